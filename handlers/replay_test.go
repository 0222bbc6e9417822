package handlers

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/dialplan"
	freeswitchconf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// eventFromForm rebuilds the MESSAGE event a captured form was made from: every field
// after mod_xml_curl's own five (hostname … key_value).
func eventFromForm(t *testing.T, form []byte) *fsemu.Event {
	t.Helper()
	l, err := dialplan.Parse("", form)
	if err != nil {
		t.Fatal(err)
	}
	ev := &fsemu.Event{}
	for _, f := range l.Fields[5:] {
		ev.Headers = append(ev.Headers, fsemu.Header{Name: f.Name, Value: f.Value})
	}
	return ev
}

// TestReplayCapturedRequests sends each request FreeSWITCH 1.10.12 made, byte for
// byte but for the request target (the recorded requests went to /fsxml), and checks that
// mod_sms would act on sipsilo's answer as intended: no direct delivery, sipsilo_id set.
func TestReplayCapturedRequests(t *testing.T) {
	ts := startServer(t, Config{Chatplan: ChatplanConfig{BodyEvents: eventsUp}}, nil)
	addr := strings.TrimPrefix(ts.url, "http://")
	files, err := filepath.Glob("../testdata/xmlcurl/*.http")
	if err != nil || len(files) != 10 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			raw = bytes.Replace(raw, []byte("POST /fsxml"), []byte("POST "+ChatplanPath), 1)
			head, form, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
			if !ok || !bytes.HasPrefix(head, []byte("POST "+ChatplanPath)) {
				t.Fatalf("not a captured xml_curl request: %.80q", raw)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			status, answerDoc, err := fsemu.Exchange(ctx, addr, raw)
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusOK {
				t.Fatalf("status %d\n%s", status, answerDoc)
			}

			ev := eventFromForm(t, form)
			out, err := fsemu.ApplyChatplan(answerDoc, ev)
			if err != nil {
				t.Fatal(err)
			}
			id := out.Vars["sipsilo_id"]
			if !out.Final || out.DirectDeliveries != 0 || id == "" || len(out.Replies) != 0 {
				t.Fatalf("FreeSWITCH would not hand the message over: %+v\n%s", out, answerDoc)
			}
			m, err := ts.store.Get(id)
			if err != nil {
				t.Fatalf("answered final, not stored: %v", err)
			}
			if m.From != ev.Get("from_user")+"@"+ev.Get("from_host") || m.To != ev.Get("to_user")+"@"+ev.Get("to_host") ||
				m.CoreUUID != ev.Get("Core-UUID") || m.FromFull != ev.Get("from_full") {
				t.Fatalf("stored %+v", m)
			}
			if bytes.Contains(head, []byte("?body=")) {
				// The documented loss of the query copy: literal %41 arrives as "A".
				want := "hello & world = 100% <ok> \"q\" 'a' | xümlaut\nline2 A ${danger}"
				if string(m.Body) != want || m.BodySource != kv.BodyQuery {
					t.Fatalf("body %q (%s), want %q", m.Body, m.BodySource, want)
				}
			} else if m.BodySource != kv.BodyAwaiting || m.Body != nil {
				t.Fatalf("request without body parameter stored body %q (%s)", m.Body, m.BodySource)
			}
		})
	}
}

// emulatedFreeSWITCH is mod_xml_curl as sipsilo's shipped binding configures it,
// pointed at the test server.
func emulatedFreeSWITCH(url string) *fsemu.XMLCurl {
	return &fsemu.XMLCurl{
		URL:     strings.Replace(freeswitchconf.ChatplanURL, "http://127.0.0.1:8484", url, 1),
		Timeout: freeswitchconf.ChatplanTimeoutSeconds * time.Second,
	}
}

// TestShippedBindingHandsMessagesOver runs messages through the emulated FreeSWITCH
// with the shipped gateway-url: each body the query carries exactly (docs/decisions.md §4)
// is stored byte for byte, and FreeSWITCH does not deliver it itself.
func TestShippedBindingHandsMessagesOver(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	fs := emulatedFreeSWITCH(ts.url)
	bodies := []string{
		"hi",
		"ümlaut € 日本語 🙂\nline two\r\nline three",
		`<?xml version="1.0"?><a b='c'>]]></a> & &amp; "quoted"`,
		"$(reboot) `id` ${system(id)} $${hostname} | ; && > /etc/passwd",
		"Robert'); DROP TABLE messages;-- \\ \x1b[31m",
		strings.Repeat("4000 bytes ", 400)[:4000],
		"",
	}
	var ids []string
	for i, body := range bodies {
		ev := fsemu.NewMessageEvent(fsemu.MessageParams{CoreUUID: "0e2f3ccc-1fbd-4726-9b43-d899a68a0b89",
			Sequence: uint64(100 + i), FromTag: "t" + string(rune('a'+i)), Body: body})
		out, res, err := fs.Process(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if res.Fallback || !out.Final || out.DirectDeliveries != 0 {
			t.Fatalf("body %.40q: fallback %v (%s), final %v, deliveries %d", body, res.Fallback, res.Reason, out.Final, out.DirectDeliveries)
		}
		m, err := ts.store.Get(out.Vars["sipsilo_id"])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Body, []byte(body)) {
			t.Fatalf("stored %q, sent %q", m.Body, body)
		}
		ids = append(ids, m.ID)
	}
	q, err := ts.store.Queue("1001@127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != len(ids) {
		t.Fatalf("queue has %d, want %d", len(q), len(ids))
	}
	for i := range q {
		if q[i].ID != ids[i] {
			t.Fatalf("queue order differs at %d", i)
		}
	}
}

// TestStoreFailureMeansStockDelivery: when sipsilo cannot store, FreeSWITCH delivers
// exactly as it would without sipsilo — once.
func TestStoreFailureMeansStockDelivery(t *testing.T) {
	fs := &fakeStore{enqueue: func(context.Context, *kv.Message) (string, error) { return "", errDiskGone }}
	ts := startServer(t, Config{}, fs)
	out, _, err := emulatedFreeSWITCH(ts.url).Process(context.Background(),
		fsemu.NewMessageEvent(fsemu.MessageParams{Sequence: 1, Body: "hello"}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Final || out.DirectDeliveries != 1 {
		t.Fatalf("final %v, deliveries %d: not stock behaviour", out.Final, out.DirectDeliveries)
	}
}
