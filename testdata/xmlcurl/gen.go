//go:build ignore

// gen rebuilds the fixtures in this folder from the files recorded on a real
// FreeSWITCH 1.10.12 on loopback (the chatplan request log, the dynamic-URL run
// and the ESL transcripts, see README.md). It is a one-off, kept so the
// fixtures' provenance can be checked and redone:
//
//	go run ./testdata/xmlcurl/gen.go -from <folder of the recordings>
//
// The capture's recorder wrote the request line with its CRLF but joined
// the header lines with bare LF (Python's str(headers)); the tshark follow
// dump of the same exchange shows CRLF on every line and 162+890 = 1052
// bytes, so the fixtures use CRLF throughout. Bodies are copied byte for
// byte and every one is checked against its Content-Length.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var names = []string{
	"01_s00_subscribe_order_notfound",
	"02_s02_message_online_notfound",
	"03_s03_message_offline_notfound",
	"04_s04_chatplan_reply",
	"05_s05_chatplan_send",
	"06_s05b_chatplan_send_final",
	"07_s05c_chatplan_final_only",
	"08_s06_api_registered_notfound",
	"09_s09_unreachable_silent_notfound",
	"10_dynamic_url_body_final",
}

type capture struct {
	scenario string
	request  []byte
	answer   []byte
	uuid     string
	seq      string
}

var (
	markRe = regexp.MustCompile(`MARK scenario (\S+) begins`)
	respRe = regexp.MustCompile(`(?m)^---- response sent: 200 OK, Content-Type: text/xml, (\d+) bytes\n`)
)

func parse(text []byte) []capture {
	var out []capture
	scenario := ""
	lines := bytes.SplitAfter(text, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := markRe.FindSubmatch(l); m != nil {
			scenario = string(m[1])
		}
		if !bytes.HasPrefix(l, []byte("==== ")) {
			continue
		}
		i++
		reqLine := strings.TrimRight(string(lines[i]), "\r\n")
		var hdrs []string
		for i++; string(lines[i]) != "\n"; i++ {
			hdrs = append(hdrs, strings.TrimRight(string(lines[i]), "\r\n"))
		}
		i++
		body := bytes.TrimSuffix(lines[i], []byte("\n"))
		var req bytes.Buffer
		req.WriteString(reqLine + "\r\n")
		cl := -1
		for _, h := range hdrs {
			req.WriteString(h + "\r\n")
			if v, ok := strings.CutPrefix(h, "Content-Length: "); ok {
				cl, _ = strconv.Atoi(v)
			}
		}
		req.WriteString("\r\n")
		req.Write(body)
		if cl != len(body) {
			log.Fatalf("body %d bytes, Content-Length %d", len(body), cl)
		}
		rest := bytes.Join(lines[i+1:], nil)
		m := respRe.FindSubmatchIndex(rest)
		n, _ := strconv.Atoi(string(rest[m[2]:m[3]]))
		c := capture{scenario: scenario, request: req.Bytes(), answer: rest[m[1] : m[1]+n]}
		for _, kv := range strings.Split(string(body), "&") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "Core-UUID":
				c.uuid = v
			case "Event-Sequence":
				c.seq = v
			}
		}
		out = append(out, c)
	}
	return out
}

// eslEvents returns the captured JSON MESSAGE events (verbatim lines) that
// carry the request's Core-UUID and Event-Sequence.
func eslEvents(dir, scenario, uuid, seq string) []byte {
	text, err := os.ReadFile(filepath.Join(dir, "esl_"+scenario+"_json.txt"))
	if err != nil {
		return nil
	}
	var out []byte
	for _, l := range bytes.Split(text, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte(`{"Event-Name":"MESSAGE"`)) {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal(l, &ev); err != nil {
			log.Fatal(err)
		}
		if ev["Core-UUID"] == uuid && ev["Event-Sequence"] == seq {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

func write(dir, name string, data []byte) {
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		log.Fatal(err)
	}
}

func main() {
	capDir := flag.String("from", "", "folder of the recorded files")
	outDir := flag.String("out", "testdata/xmlcurl", "fixture folder")
	flag.Parse()
	if *capDir == "" {
		log.Fatal("-from: name the folder holding the recorded files")
	}
	var all []capture
	for _, f := range []string{"xml_curl_chatplan_requests.txt", "xml_curl_dynamic_url_body.txt"} {
		text, err := os.ReadFile(filepath.Join(*capDir, f))
		if err != nil {
			log.Fatal(err)
		}
		all = append(all, parse(text)...)
	}
	if len(all) != len(names) {
		log.Fatalf("found %d requests, want %d", len(all), len(names))
	}
	for i, c := range all {
		write(*outDir, names[i]+".http", c.request)
		write(*outDir, names[i]+".answer.xml", c.answer)
		if ev := eslEvents(*capDir, c.scenario, c.uuid, c.seq); ev != nil {
			write(*outDir, names[i]+".esl.json", ev)
		}
	}
	// Scenario 13 has no recorded request; its post-chatplan event is kept
	// for the set+final check.
	text, err := os.ReadFile(filepath.Join(*capDir, "esl_13_chatplan_set_final_json.txt"))
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range bytes.Split(text, []byte("\n")) {
		if bytes.HasPrefix(l, []byte(`{"Event-Name":"MESSAGE"`)) {
			write(*outDir, "11_s13_chatplan_set_final.esl.json", append(l, '\n'))
		}
	}
	fmt.Println("wrote", len(all), "requests")
}
