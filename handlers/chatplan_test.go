package handlers

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/dialplan"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// capturedFields are the form fields of a chatplan request captured from FreeSWITCH
// 1.10.12 (testdata/xmlcurl/10_dynamic_url_body_final.http), decoded.
var capturedFields = [][2]string{
	{"hostname", "vm"}, {"section", "chatplan"}, {"tag_name", ""}, {"key_name", ""}, {"key_value", ""},
	{"Event-Name", "MESSAGE"}, {"Core-UUID", "bdcc48b6-f5fb-4c75-ab1b-a0d810059303"},
	{"FreeSWITCH-Hostname", "vm"}, {"FreeSWITCH-Switchname", "vm"}, {"FreeSWITCH-IPv4", "192.0.2.2"},
	{"FreeSWITCH-IPv6", "fd00::2"}, {"Event-Date-Local", "2026-11-26 03:54:57"},
	{"Event-Date-GMT", "Thu, 26 Nov 2026 03:54:57 GMT"}, {"Event-Date-Timestamp", "1795665297759755"},
	{"Event-Calling-File", "sofia_presence.c"}, {"Event-Calling-Function", "sofia_presence_handle_sip_i_message"},
	{"Event-Calling-Line-Number", "4889"}, {"Event-Sequence", "378"}, {"login", "sip:mod_sofia@127.0.0.1:5060"},
	{"proto", "sip"}, {"to_proto", "sip"}, {"from", "1000@127.0.0.1"}, {"from_user", "1000"},
	{"from_host", "127.0.0.1"}, {"to_user", "1001"}, {"to_host", "127.0.0.1"}, {"from_sip_ip", "127.0.0.1"},
	{"from_sip_port", "25080"}, {"to", "1001@127.0.0.1"}, {"subject", "SIMPLE MESSAGE"}, {"context", "public"},
	{"type", "text/plain"}, {"from_full", "<sip:1000@127.0.0.1>;tag=i0xnc8q3"}, {"sip_profile", "internal"},
	{"dest_proto", "sip"}, {"max_forwards", "70"},
}

// enc percent-encodes like FreeSWITCH for these tests: never '+' for a space.
func enc(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// form builds a chatplan form from the captured fields with some values replaced
// (a nil value drops the field).
func form(with map[string]*string) []byte {
	var parts []string
	for _, f := range capturedFields {
		v := f[1]
		if r, ok := with[f[0]]; ok {
			if r == nil {
				continue
			}
			v = *r
		}
		parts = append(parts, f[0]+"="+enc(v))
	}
	return []byte(strings.Join(parts, "&"))
}

func ptr(s string) *string { return &s }

func bodyQuery(body string) string { return "body=" + enc(body) }

func TestChatplanStoresThenAnswersFinal(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	bodies := []string{
		"hello",
		"ümlaut € 日本語 🙂\nsecond line\r\nthird",
		`<xml attr="x">]]>&amp;</xml> ' " | ; $(rm -rf /) ${system(id)} $${x} ` + "`id`",
		"'; DROP TABLE messages; --",
		"",
	}
	for seq, body := range bodies {
		f := form(map[string]*string{"Event-Sequence": ptr(string(rune('0' + seq)))})
		a := post(t, ts.url, http.MethodPost, bodyQuery(body), f)
		id := a.storedID()
		if a.status != http.StatusOK || id == "" {
			t.Fatalf("body %q: status %d, answer:\n%s", body, a.status, a.body)
		}
		m, err := ts.store.Get(id)
		if err != nil {
			t.Fatalf("answered final but not stored: %v", err)
		}
		if !bytes.Equal(m.Body, []byte(body)) || m.BodySource != kv.BodyQuery {
			t.Fatalf("stored body %q (%s), want %q", m.Body, m.BodySource, body)
		}
		if m.From != "1000@127.0.0.1" || m.To != "1001@127.0.0.1" || m.FromFull != "<sip:1000@127.0.0.1>;tag=i0xnc8q3" ||
			m.ContentType != "text/plain" || m.Profile != "internal" || m.Context != "public" ||
			m.CoreUUID != "bdcc48b6-f5fb-4c75-ab1b-a0d810059303" || m.EventSeq != uint64(seq) || m.State != kv.StateQueued {
			t.Fatalf("stored record: %+v", m)
		}
		if strings.Contains(ts.logs.String(), body) && body != "" {
			t.Fatalf("body reached the INFO log:\n%s", ts.logs.String())
		}
	}
	if strings.Contains(ts.logs.String(), "body=") {
		t.Fatalf("access log printed the query string:\n%s", ts.logs.String())
	}
}

func eventsUp() bool { return true }

// TestChatplanExactTextAtIntake: the shipped binding's text and md5
// parameters, as FreeSWITCH expands them, give the exact body at once; a text
// whose MD5 does not match is kept as a lossy copy.
func TestChatplanExactTextAtIntake(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	for seq, c := range []struct {
		body  string
		sum   string // "" for the body's own
		exact bool
	}{
		{body: "  %41 edges | ~ /\r\n  ", exact: true},
		{body: "\r\n", exact: true},
		{body: "tampered", sum: strings.Repeat("0", 32)},
	} {
		w := dialplan.TextSentinel + c.body + dialplan.TextSentinel
		sum := c.sum
		if sum == "" {
			h := md5.Sum([]byte(w))
			sum = hex.EncodeToString(h[:])
		}
		f := form(map[string]*string{"Event-Sequence": ptr(string(rune('0' + seq)))})
		a := post(t, ts.url, http.MethodPost, "text="+fsemu.URLEncode(w)+"&md5="+sum, f)
		m, err := ts.store.Get(a.storedID())
		if err != nil {
			t.Fatalf("%q: not stored: %v\n%s", c.body, err, a.body)
		}
		wantSrc := kv.BodyQuery
		if c.exact {
			wantSrc = kv.BodyQueryExact
		}
		// Deliverable only after the ESL event or the grace, which keep bursts in order.
		if string(m.Body) != c.body || m.BodySource != wantSrc || m.BodyFinal {
			t.Errorf("%q: stored body %q source %q final %v", c.body, m.Body, m.BodySource, m.BodyFinal)
		}
	}
}

func TestChatplanWithoutBodyParameterAwaitsESL(t *testing.T) {
	ts := startServer(t, Config{Chatplan: ChatplanConfig{BodyEvents: eventsUp}}, nil)
	a := post(t, ts.url, http.MethodPost, "", form(nil))
	m, err := ts.store.Get(a.storedID())
	if err != nil {
		t.Fatalf("not stored: %v\n%s", err, a.body)
	}
	if m.BodySource != kv.BodyAwaiting || m.Body != nil {
		t.Fatalf("body %q source %q, want awaiting", m.Body, m.BodySource)
	}
}

// TestChatplanWithoutBodyOrEventSocketLeavesToFreeSWITCH: with no exact body in
// the query and the event socket down, the exact body could never arrive (the
// event fires once): without a body the message became no_body, never
// delivered; with the lossy `body=` copy it was delivered altered. FreeSWITCH
// delivers both as stock, and the answer is counted (docs/decisions.md §25).
func TestChatplanWithoutBodyOrEventSocketLeavesToFreeSWITCH(t *testing.T) {
	var up atomic.Bool
	observed := make(chan string, 10) // Observe runs after the answer is written
	cfg := Config{Chatplan: ChatplanConfig{BodyEvents: up.Load, Observe: func(answer, why string, _ time.Duration) {
		observed <- answer + "/" + why
	}}}
	ts := startServer(t, cfg, nil)
	a := post(t, ts.url, http.MethodPost, "", form(nil))
	if a.status != http.StatusOK || a.storedID() != "" || !bytes.Contains(a.body, []byte(`status="not found"`)) {
		t.Fatalf("event socket down, no body: status %d, answer:\n%s", a.status, a.body)
	}
	if all, _ := ts.store.All(); len(all) != 0 {
		t.Fatalf("stored %d messages it could never get the body of", len(all))
	}
	// The lossy copy of the old binding (`body=`) is not enough either.
	if id := post(t, ts.url, http.MethodPost, bodyQuery("hi"), form(map[string]*string{"Event-Sequence": ptr("2")})).storedID(); id != "" {
		t.Fatal("message with only the lossy query body stored while the event socket is down")
	}
	// An exact body in the query (text and its md5) needs no event socket.
	w := dialplan.TextSentinel + "hi" + dialplan.TextSentinel
	sum := md5.Sum([]byte(w))
	exact := "text=" + fsemu.URLEncode(w) + "&md5=" + hex.EncodeToString(sum[:])
	if id := post(t, ts.url, http.MethodPost, exact, form(map[string]*string{"Event-Sequence": ptr("3")})).storedID(); id == "" {
		t.Fatal("message with an exact query body not stored while the event socket is down")
	}
	up.Store(true)
	if id := post(t, ts.url, http.MethodPost, "", form(map[string]*string{"Event-Sequence": ptr("4")})).storedID(); id == "" {
		t.Fatal("message without a query body not stored while the event socket is up")
	}
	want := []string{AnswerNotFound + "/" + WhyNoBodySource, AnswerNotFound + "/" + WhyNoBodySource,
		AnswerFinal + "/" + WhyStored, AnswerFinal + "/" + WhyStored}
	for i, w := range want {
		select {
		case got := <-observed:
			if got != w {
				t.Fatalf("answer %d observed as %s, want %s", i+1, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("answer %d never observed", i+1)
		}
	}
}

func TestChatplanLeavesToFreeSWITCH(t *testing.T) {
	ts := startServer(t, Config{Chatplan: ChatplanConfig{Domains: []string{"Example.COM", "127.0.0.1"}}}, nil)
	cases := []struct {
		name  string
		query string
		form  []byte
	}{
		{"other section", "", []byte("hostname=vm&section=directory&tag_name=domain&key_name=name&key_value=127.0.0.1")},
		{"non-local recipient", bodyQuery("hi"), form(map[string]*string{"to_host": ptr("elsewhere.net")})},
		{"typing notification", bodyQuery("<isComposing/>"), form(map[string]*string{"type": ptr("application/im-iscomposing+xml")})},
		{"delivery report", bodyQuery("<imdn/>"), form(map[string]*string{"type": ptr("Message/IMDN+xml; charset=utf-8")})},
		{"body over limit", bodyQuery(strings.Repeat("x", DefaultMaxBody+1)), form(nil)},
		{"not for sip", bodyQuery("hi"), form(map[string]*string{"dest_proto": ptr("verto")})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := post(t, ts.url, http.MethodPost, c.query, c.form)
			if a.status != http.StatusOK || !a.notFound() {
				t.Fatalf("status %d answer:\n%s", a.status, a.body)
			}
		})
	}
	// Case-insensitive domain match, and a body exactly at the limit, are stored.
	a := post(t, ts.url, http.MethodPost, bodyQuery(strings.Repeat("x", DefaultMaxBody)),
		form(map[string]*string{"to_host": ptr("example.com")}))
	if a.storedID() == "" {
		t.Fatalf("local message at the size limit not stored:\n%s", a.body)
	}
	st, err := ts.store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 1 {
		t.Fatalf("store holds %d messages, want 1", st.Messages)
	}
}

func TestChatplanHostileInput(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	tenMiB := strings.Repeat("A", 10<<20)
	cases := []struct {
		name   string
		query  string
		form   []byte
		status int
	}{
		{"empty form", "", nil, http.StatusBadRequest},
		{"garbage form", "", []byte("\x00\x01\xff&&=&"), http.StatusBadRequest},
		{"no section", "", []byte("to_user=1001&to_host=127.0.0.1"), http.StatusBadRequest},
		{"missing recipient", bodyQuery("hi"), form(map[string]*string{"to_user": nil}), http.StatusBadRequest},
		{"missing Core-UUID", bodyQuery("hi"), form(map[string]*string{"Core-UUID": nil}), http.StatusBadRequest},
		{"bad Event-Sequence", bodyQuery("hi"), form(map[string]*string{"Event-Sequence": ptr("1; DROP")}), http.StatusBadRequest},
		{"invalid UTF-8 sender", bodyQuery("hi"), form(map[string]*string{"from_user": ptr("\xff\xfe")}), http.StatusBadRequest},
		{"control char in context", bodyQuery("hi"), form(map[string]*string{"context": ptr("pub\x01lic")}), http.StatusBadRequest},
		{"10 MiB form", "", []byte("section=chatplan&x=" + tenMiB), http.StatusRequestEntityTooLarge},
		{"10 MiB body in query", "body=" + tenMiB, form(nil), http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := tryPost(t, ts.url, http.MethodPost, c.query, c.form)
			if err != nil {
				// Past its limit the server answers 413 and closes; a client still
				// sending may see the reset before the answer (libcurl, with Expect:
				// 100-continue, would not send the body at all). Refused all the same.
				if c.status == http.StatusRequestEntityTooLarge &&
					(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
					return
				}
				t.Fatal(err)
			}
			if a.status != c.status {
				t.Fatalf("status %d, want %d:\n%.300s", a.status, c.status, a.body)
			}
			// Even net/http's own 431 comes as the not-found document.
			if !a.notFound() {
				t.Fatalf("answer is not the not-found document:\n%.300s", a.body)
			}
		})
	}
	st, err := ts.store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 0 || st.Queued != 0 {
		t.Fatalf("rejected requests left %d messages, %d queue entries", st.Messages, st.Queued)
	}
	// Rejections are logged at WARN, without the sender's text.
	if logs := ts.logs.String(); !strings.Contains(logs, "level=WARN") ||
		strings.Contains(logs, "DROP") || strings.Contains(logs, "pub\x01lic") || strings.Contains(logs, "AAAA") {
		t.Fatalf("rejection logs missing or quoting user text:\n%.2000s", logs)
	}

	// Hostile text where it is legal is stored exactly and the answer still parses.
	hostileCtx := `pub"lic'<>&$${x}` + "\n"
	body := "\xff\xfe not UTF-8 ]]> <!-- ${x}"
	a := post(t, ts.url, http.MethodPost, bodyQuery(body), form(map[string]*string{"context": &hostileCtx}))
	m, err := ts.store.Get(a.storedID())
	if err != nil {
		t.Fatalf("not stored: %v\n%s", err, a.body)
	}
	if string(m.Body) != body || a.doc.Sections[0].Contexts[0].Name != hostileCtx {
		t.Fatalf("body %q context %q", m.Body, a.doc.Sections[0].Contexts[0].Name)
	}
}

func TestChatplanStoreFailureLeavesToFreeSWITCH(t *testing.T) {
	fs := &fakeStore{enqueue: func(context.Context, *kv.Message) (string, error) { return "", errDiskGone }}
	ts := startServer(t, Config{}, fs)
	a := post(t, ts.url, http.MethodPost, bodyQuery("hi"), form(nil))
	if a.status != http.StatusOK || !a.notFound() {
		t.Fatalf("status %d:\n%s", a.status, a.body)
	}
	if !strings.Contains(ts.logs.String(), "level=ERROR") || !strings.Contains(ts.logs.String(), "input/output error") {
		t.Fatalf("store failure not logged as an error:\n%s", ts.logs.String())
	}
}

func TestChatplanSlowStoreAnswersWithinDeadline(t *testing.T) {
	fs := &fakeStore{enqueue: func(ctx context.Context, _ *kv.Message) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}}
	ts := startServer(t, Config{Chatplan: ChatplanConfig{AnswerTimeout: 50 * time.Millisecond}}, fs)
	a := post(t, ts.url, http.MethodPost, bodyQuery("hi"), form(nil))
	if !a.notFound() {
		t.Fatalf("slow store: answer\n%s", a.body)
	}
}

// An answer FreeSWITCH no longer waits for must not leave sipsilo owning the message.
func TestChatplanReleasesWhenFreeSWITCHHungUp(t *testing.T) {
	entered := make(chan struct{})
	fs := &fakeStore{enqueue: func(ctx context.Context, _ *kv.Message) (string, error) {
		close(entered)
		<-ctx.Done() // the commit completes only after the client has gone
		return "01COMMITTEDLATE", nil
	}}
	ts := startServer(t, Config{Chatplan: ChatplanConfig{AnswerTimeout: 10 * time.Second}}, fs)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	f := form(nil)
	req := "POST " + ChatplanPath + "?body=hi HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Content-Length: " + itoa(len(f)) + "\r\n\r\n" + string(f)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	<-entered
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(fs.releasedIDs()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := fs.releasedIDs(); len(got) != 1 || got[0] != "01COMMITTEDLATE" {
		t.Fatalf("released %v, want [01COMMITTEDLATE]", got)
	}
}

func TestChatplanUnwritableStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s, err := kv.Open(path, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{}, s)
	before := post(t, ts.url, http.MethodPost, bodyQuery("acknowledged"), form(nil)).storedID()
	if before == "" {
		t.Fatal("not stored while writable")
	}
	s.Close(context.Background())

	ro, err := kv.Open(path, kv.Options{OpenFile: readOnlyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close(context.Background())
	ts2 := startServer(t, Config{}, ro)
	a := post(t, ts2.url, http.MethodPost, bodyQuery("while read-only"), form(nil))
	if a.status != http.StatusOK || !a.notFound() {
		t.Fatalf("read-only store: status %d\n%s", a.status, a.body)
	}
	if !strings.Contains(ts2.logs.String(), "level=ERROR") {
		t.Fatalf("no error logged:\n%s", ts2.logs.String())
	}
	if m, err := ro.Get(before); err != nil || string(m.Body) != "acknowledged" {
		t.Fatalf("acknowledged message lost: %v", err)
	}
}

func TestChatplanBasicAuthAndLowercaseMethod(t *testing.T) {
	ts := startServer(t, Config{Chatplan: ChatplanConfig{User: "fs", Password: "s3cret"}}, nil)
	if a := post(t, ts.url, http.MethodPost, bodyQuery("hi"), form(nil)); a.status != http.StatusUnauthorized {
		t.Fatalf("no credentials: status %d", a.status)
	}
	req, _ := http.NewRequest("post", ts.url+ChatplanPath+"?"+bodyQuery("hi"), bytes.NewReader(form(nil)))
	req.SetBasicAuth("fs", "s3cret")
	if a := do(t, req); a.storedID() == "" {
		t.Fatalf("lower-case post with credentials: status %d\n%s", a.status, a.body)
	}
	req, _ = http.NewRequest(http.MethodPost, ts.url+ChatplanPath, bytes.NewReader(form(nil)))
	req.SetBasicAuth("fs", "wrong")
	if a := do(t, req); a.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d", a.status)
	}
}

func TestHealthz(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	res, err := http.Get(ts.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
}
