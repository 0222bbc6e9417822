package fsreal

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
)

//go:embed conf
var baseConf embed.FS

// ports are what Start rewrites into the conf so that test processes can run
// FreeSWITCHes side by side.
type ports struct {
	sip      int // profile internal, UDP and TCP
	esl      int
	rtpStart int
}

// writeConf renders the base conf with o and p into dir and installs sipsilo's
// files the way freeswitch-conf/README.md tells an operator to: *.xml files
// replace theirs, the modules snippet is merged into modules.conf.xml, the
// ping-params snippet goes at the end of internal.xml's <settings>.
func writeConf(dir string, o Options, p ports) error {
	files := o.Files
	if o.Sipsilo != nil {
		so := *o.Sipsilo
		so.ESLAddr = "127.0.0.1:" + strconv.Itoa(p.esl)
		so.ESLPassword = o.eslPassword()
		rendered, err := conf.Render(so)
		if err != nil {
			return err
		}
		files = append(rendered, files...)
	}
	multiReg := ""
	if o.MultipleRegistrations != "" {
		multiReg = `    <param name="multiple-registrations" value="` + xmlAttr(o.MultipleRegistrations) + `"/>` + "\n"
	}
	var extra strings.Builder
	var loads []string
	install := map[string][]byte{}
	for _, f := range files {
		switch {
		case f.Path == "sip_profiles/internal-ping-params.xml.snippet":
			extra.Reset()
			extra.Write(f.Data)
			extra.WriteString("\n")
		case f.Path == "autoload_configs/modules.conf.xml.snippet":
			loads = append(loads, loadLine.FindAllString(string(f.Data), -1)...)
		case strings.HasSuffix(f.Path, ".xml"):
			install[f.Path] = f.Data
		}
	}
	contextParam := `    <param name="context" value="` + xmlAttr(o.context()) + `"/>` + "\n"
	if o.Context == NoContext {
		contextParam = ""
	}
	repl := strings.NewReplacer(
		"{{SIP_PORT}}", strconv.Itoa(p.sip),
		"{{ESL_PORT}}", strconv.Itoa(p.esl),
		"{{ESL_PASSWORD}}", xmlAttr(o.eslPassword()),
		"{{RTP_START}}", strconv.Itoa(p.rtpStart),
		"{{RTP_END}}", strconv.Itoa(p.rtpStart+20),
		"{{CONTEXT_PARAM}}", contextParam,
		"{{MULTIREG_PARAM}}", multiReg,
		"{{EXTRA_PARAMS}}", extra.String(),
		"{{USERS}}", usersXML(o.users()),
	)
	err := fs.WalkDir(baseConf, "conf", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := baseConf.ReadFile(path)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(path, "conf/")
		text := repl.Replace(string(data))
		if rel == "autoload_configs/modules.conf.xml" {
			for _, l := range loads {
				if !strings.Contains(text, l) {
					text = strings.Replace(text, "  </modules>", "    "+l+"\n  </modules>", 1)
				}
			}
		}
		return writeFile(filepath.Join(dir, filepath.FromSlash(rel)), []byte(text))
	})
	if err != nil {
		return err
	}
	for rel, data := range install {
		if rel == "autoload_configs/event_socket.conf.xml" {
			// An operator's file, with this instance's port and address.
			data = listenPort.ReplaceAll(data, []byte(`${1}`+strconv.Itoa(p.esl)+`"`))
			data = listenIP.ReplaceAll(data, []byte(`${1}127.0.0.1"`))
		}
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(rel)), data); err != nil {
			return err
		}
	}
	return nil
}

var (
	loadLine   = regexp.MustCompile(`<load module="[a-z_0-9]+"/>`)
	listenPort = regexp.MustCompile(`(<param name="listen-port" value=")[^"]*"`)
	listenIP   = regexp.MustCompile(`(<param name="listen-ip" value=")[^"]*"`)
)

func usersXML(users map[string]string) string {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, u := range names {
		fmt.Fprintf(&b, "  <user id=\"%s\">\n    <params>\n      <param name=\"password\" value=\"%s\"/>\n    </params>\n"+
			"    <variables>\n      <variable name=\"user_context\" value=\"default\"/>\n    </variables>\n  </user>\n",
			xmlAttr(u), xmlAttr(users[u]))
	}
	return b.String()
}

// xmlAttr escapes s for an attribute value FreeSWITCH reads: XML entities, and
// '$' as &#36; so that the preprocessor does not expand it.
func xmlAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "$", "&#36;").Replace(s)
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// ReadFiles reads a directory `sipsilo fs-config --out` wrote, for
// Options.Files.
func ReadFiles(dir string) ([]conf.File, error) {
	var out []conf.File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		out = append(out, conf.File{Path: filepath.ToSlash(rel), Data: data})
		return err
	})
	return out, err
}
