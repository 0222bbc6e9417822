package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

const viewToken = "v13ws"

// viewGet GETs path and returns the status and the body.
func viewGet(t *testing.T, base, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

func viewJSON(t *testing.T, base, path string, into any) {
	t.Helper()
	code, b := viewGet(t, base, path, viewToken)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

// fakePresence is a fixed presence map.
type fakePresence struct {
	states []presence.State
	now    time.Time
}

func (f *fakePresence) Page(after string, limit int) ([]presence.State, string) {
	var out []presence.State
	for _, st := range f.states {
		if st.AOR > after {
			out = append(out, st)
		}
	}
	if limit > 0 && len(out) > limit {
		return out[:limit], out[limit-1].AOR
	}
	return out, ""
}

func (f *fakePresence) Lookup(aor string) (presence.State, bool) {
	for _, st := range f.states {
		if st.AOR == aor {
			return st, true
		}
	}
	return presence.State{}, false
}

func (f *fakePresence) Now() time.Time { return f.now }

type viewFixture struct {
	url   string
	store *kv.Store
	ids   map[string]string
}

// hostileAOR has every character that means something in a URL path or query.
const hostileAOR = "we/ird %41?#&+;é@x"

func startViews(t *testing.T, h History) *viewFixture {
	t.Helper()
	ctx := context.Background()
	s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	f := &viewFixture{store: s, ids: map[string]string{}}
	add := func(name, to string, seq uint64, body []byte) {
		id, err := s.Enqueue(ctx, &kv.Message{From: "1000@127.0.0.1", To: to, CoreUUID: "core", EventSeq: seq,
			ContentType: "text/plain", Body: body, BodySource: kv.BodyQuery})
		if err != nil {
			t.Fatal(err)
		}
		f.ids[name] = id
	}
	for i := range 5 {
		add("q"+itoa(i), "1001@127.0.0.1", uint64(i+1), []byte("text "+itoa(i)))
	}
	add("binary", hostileAOR, 10, []byte{0xff, 0xfe, 'x'})
	add("literal", "a%41@x", 11, []byte("lit"))
	add("dead", "1002@127.0.0.1", 12, []byte("refused"))
	add("delivered", "1002@127.0.0.1", 13, []byte("ok"))
	if err := s.DeadLetter(ctx, f.ids["dead"], "refused 5 times"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, f.ids["delivered"], "a-1", "Sent"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pres := &fakePresence{now: now, states: []presence.State{
		{AOR: "1000@127.0.0.1", Reach: presence.Unknown},
		{AOR: "1001@127.0.0.1", Reach: presence.Reachable, Evidence: "options 200", EvidenceAt: now.Add(-time.Second),
			Registrations: []presence.Registration{{CallID: "c1", Contact: "sip:1001@127.0.0.1:5062", Reach: presence.Reachable,
				Expires: now.Add(time.Hour), PingRTT: 1500 * time.Microsecond, PingMisses: 0, LastPing: now, LastAlive: now}}},
		{AOR: hostileAOR, Reach: presence.Unreachable},
	}}
	ts := startServer(t, Config{Admin: AdminConfig{Token: viewToken, History: h,
		Views: AdminViews{Store: s, Presence: pres}}}, s)
	f.url = ts.url
	return f
}

func TestAdminViewsNeedTheToken(t *testing.T) {
	f := startViews(t, nil)
	for _, p := range []string{"/api/v1/stats", "/api/v1/queue/1001@127.0.0.1", "/api/v1/dead",
		"/api/v1/presence", "/api/v1/presence/1001@127.0.0.1", "/api/v1/messages/" + f.ids["q0"]} {
		for _, tok := range []string{"", "wrong", viewToken + "x"} {
			code, body := viewGet(t, f.url, p, tok)
			if code != http.StatusUnauthorized || strings.Contains(string(body), "text 0") {
				t.Fatalf("GET %s with token %q: %d %s", p, tok, code, body)
			}
		}
		if code, body := viewGet(t, f.url, p, viewToken); code != http.StatusOK {
			t.Fatalf("GET %s with the token: %d %s", p, code, body)
		}
	}
}

type messageItem struct {
	ID         string  `json:"id"`
	To         string  `json:"to"`
	State      string  `json:"state"`
	Body       *string `json:"body"`
	BodyBase64 []byte  `json:"body_base64"`
	BodyLen    int     `json:"body_len"`
	History    []struct {
		Kind string `json:"kind"`
	} `json:"history"`
	Source string `json:"source"`
}

type messagePageJSON struct {
	Items []messageItem `json:"items"`
	Next  string        `json:"next"`
}

func TestAdminStatsIsTheStoreSummary(t *testing.T) {
	f := startViews(t, nil)
	var got kv.Summary
	viewJSON(t, f.url, "/api/v1/stats", &got)
	want, err := f.store.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.ByState, want.ByState) || got.QueueEntries != 7 || got.Messages != 9 ||
		len(got.Recipients) != 3 || got.Recipients[0].AOR != "1001@127.0.0.1" || got.Recipients[0].Queued != 5 {
		t.Fatalf("stats %+v, store %+v", got, want)
	}
}

func TestAdminQueuePagesAndEscapes(t *testing.T) {
	f := startViews(t, nil)
	var ids []string
	path := "/api/v1/queue/" + url.PathEscape("1001@127.0.0.1") + "?limit=2"
	for page := 0; ; page++ {
		var p messagePageJSON
		viewJSON(t, f.url, path, &p)
		for _, it := range p.Items {
			ids = append(ids, it.ID)
			if it.Body == nil || !strings.HasPrefix(*it.Body, "text ") || it.BodyLen != len(*it.Body) || it.State != "queued" {
				t.Fatalf("item %+v", it)
			}
		}
		if p.Next == "" {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
		path = "/api/v1/queue/1001@127.0.0.1?limit=2&after=" + url.QueryEscape(p.Next)
	}
	if len(ids) != 5 || ids[0] != f.ids["q0"] || ids[4] != f.ids["q4"] {
		t.Fatalf("queue %v", ids)
	}

	var p messagePageJSON
	viewJSON(t, f.url, "/api/v1/queue/"+url.PathEscape(hostileAOR), &p)
	if len(p.Items) != 1 || p.Items[0].To != hostileAOR || p.Items[0].Body != nil ||
		string(p.Items[0].BodyBase64) != "\xff\xfex" || p.Items[0].BodyLen != 3 {
		t.Fatalf("hostile AOR's queue %+v", p)
	}
	// A literal %41 in an address is not decoded twice.
	viewJSON(t, f.url, "/api/v1/queue/"+url.PathEscape("a%41@x"), &p)
	if len(p.Items) != 1 || p.Items[0].ID != f.ids["literal"] {
		t.Fatalf("literal %%41 queue %+v", p)
	}
	viewJSON(t, f.url, "/api/v1/queue/nobody@x", &p)
	if len(p.Items) != 0 || p.Items == nil || p.Next != "" {
		t.Fatalf("empty queue %+v", p)
	}
	// However large, a limit is clamped to 500.
	viewJSON(t, f.url, "/api/v1/queue/1001@127.0.0.1?limit=99999999999999999999999999", &p)
	if len(p.Items) != 5 {
		t.Fatalf("huge limit: %d items", len(p.Items))
	}
}

func TestAdminViewsRefuseBadParameters(t *testing.T) {
	f := startViews(t, nil)
	for _, p := range []string{
		"/api/v1/queue/1001@127.0.0.1?limit=0",
		"/api/v1/queue/1001@127.0.0.1?limit=-1",
		"/api/v1/queue/1001@127.0.0.1?limit=ten",
		"/api/v1/queue/1001@127.0.0.1?limit=1e3",
		"/api/v1/queue/1001@127.0.0.1?after=01JNOSUCHMESSAGE0000000000",
		"/api/v1/queue/1001@127.0.0.1?after=" + f.ids["dead"], // another recipient's
		"/api/v1/queue/1001@127.0.0.1?after=%01",
		"/api/v1/queue/" + url.PathEscape("bad\x01aor@x"),
		"/api/v1/queue/" + url.PathEscape("bad\xffutf8@x"),
		"/api/v1/queue/" + strings.Repeat("a", 1100) + "@x",
		"/api/v1/dead?state=DROP%20TABLE",
		"/api/v1/dead?state=" + strings.Repeat("a", 40),
		"/api/v1/presence?limit=-5",
		"/api/v1/presence/" + url.PathEscape("x\r\ny@x"),
		"/api/v1/messages/short",
	} {
		code, body := viewGet(t, f.url, p, viewToken)
		var e struct {
			Error string `json:"error"`
		}
		if code != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("GET %.80s: %d %s, want 400 with a JSON error", p, code, body)
		}
	}
}

func TestAdminDeadLettersAndOtherStates(t *testing.T) {
	f := startViews(t, nil)
	var p messagePageJSON
	viewJSON(t, f.url, "/api/v1/dead", &p)
	if len(p.Items) != 1 || p.Items[0].ID != f.ids["dead"] || p.Items[0].State != "dead" || p.Next != "" {
		t.Fatalf("dead letters %+v", p)
	}
	viewJSON(t, f.url, "/api/v1/dead?state=delivered", &p)
	if len(p.Items) != 1 || p.Items[0].ID != f.ids["delivered"] {
		t.Fatalf("delivered %+v", p)
	}
	viewJSON(t, f.url, "/api/v1/dead?state=queued&limit=3", &p)
	if len(p.Items) != 3 || p.Next != p.Items[2].ID {
		t.Fatalf("queued page %+v", p)
	}
	viewJSON(t, f.url, "/api/v1/dead?state=expired", &p)
	if len(p.Items) != 0 {
		t.Fatalf("expired %+v", p)
	}
}

func TestAdminMessageFromStoreThenHistory(t *testing.T) {
	h := &fakeHistory{entries: []HistoryEntry{{ID: "01JFIXTURE0000000000000000", From: "1000@127.0.0.1",
		To: "1001@127.0.0.1", State: "delivered", Body: []byte("old"), Received: time.Now().Add(-48 * time.Hour)}}}
	f := startViews(t, h)
	var m messageItem
	viewJSON(t, f.url, "/api/v1/messages/"+f.ids["dead"], &m)
	if m.Source != "store" || m.State != "dead" || m.Body == nil || *m.Body != "refused" ||
		len(m.History) != 2 || m.History[0].Kind != "received" || m.History[1].Kind != "dead" {
		t.Fatalf("stored message %+v", m)
	}
	// Gone from the store (e.g. a compacted file): the MySQL history answers.
	var old struct {
		ID     string `json:"id"`
		Events []any  `json:"events"`
	}
	viewJSON(t, f.url, "/api/v1/messages/01JFIXTURE0000000000000000", &old)
	if old.ID != "01JFIXTURE0000000000000000" || len(old.Events) != 2 {
		t.Fatalf("history fallback %+v", old)
	}
	if code, _ := viewGet(t, f.url, "/api/v1/messages/01JNOSUCHMESSAGE0000000000", viewToken); code != http.StatusNotFound {
		t.Fatalf("unknown id: %d", code)
	}
	// Without a mirror, unknown is simply not found.
	f = startViews(t, nil)
	if code, _ := viewGet(t, f.url, "/api/v1/messages/01JNOSUCHMESSAGE0000000000", viewToken); code != http.StatusNotFound {
		t.Fatalf("unknown id without a mirror: %d", code)
	}
}

func TestAdminPresence(t *testing.T) {
	f := startViews(t, nil)
	var all kv.Page[presence.View]
	viewJSON(t, f.url, "/api/v1/presence?limit=2", &all)
	if len(all.Items) != 2 || all.Next != "1001@127.0.0.1" || all.Items[0].AOR != "1000@127.0.0.1" {
		t.Fatalf("presence page %+v", all)
	}
	viewJSON(t, f.url, "/api/v1/presence?limit=2&after="+url.QueryEscape(all.Next), &all)
	if len(all.Items) != 1 || all.Items[0].AOR != hostileAOR || all.Next != "" {
		t.Fatalf("presence page 2 %+v", all)
	}
	var one presence.View
	viewJSON(t, f.url, "/api/v1/presence/1001@127.0.0.1", &one)
	if !one.Registered || one.Reach != presence.Reachable || one.Evidence != "options 200" || len(one.Registrations) != 1 {
		t.Fatalf("one AOR %+v", one)
	}
	if r := one.Registrations[0]; r.PingRTTms != 1.5 || r.LastPing.IsZero() || r.Contact == "" {
		t.Fatalf("registration %+v", r)
	}
	if d := one.Devices; len(d) != 1 || d[0].Key != "contact:sip:1001@127.0.0.1:5062" || !d[0].Deliverable {
		t.Fatalf("devices %+v", d)
	}
	viewJSON(t, f.url, "/api/v1/presence/"+url.PathEscape(hostileAOR), &one)
	if one.AOR != hostileAOR || one.Reach != presence.Unreachable {
		t.Fatalf("hostile AOR %+v", one)
	}
	if code, _ := viewGet(t, f.url, "/api/v1/presence/nobody@x", viewToken); code != http.StatusNotFound {
		t.Fatalf("unknown AOR: %d", code)
	}
}

func TestAdminViewsWithoutTheirParts(t *testing.T) {
	ts := startServer(t, Config{Admin: AdminConfig{Token: viewToken}}, nil)
	for _, p := range []string{"/api/v1/stats", "/api/v1/queue/a@b", "/api/v1/dead", "/api/v1/presence", "/api/v1/presence/a@b"} {
		if code, body := viewGet(t, ts.url, p, viewToken); code != http.StatusServiceUnavailable {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}
}
