package handlers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// fakeActions is the real store with relay's part recorded.
type fakeActions struct {
	*kv.Store
	mu       sync.Mutex
	queued   []string // ids told to Queued
	retries  []string // "aor|id|force"
	timerF   []string // held ids: Retry without force refuses them
	released bool
}

func (f *fakeActions) Retry(aor, id string, force bool) (RetryOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retries = append(f.retries, fmt.Sprintf("%s|%s|%v", aor, id, force))
	if len(f.timerF) > 0 && !force {
		return RetryOutcome{TimerF: f.timerF}, fmt.Errorf("1 message(s) %w", ErrTimerF)
	}
	f.released = true
	return RetryOutcome{Backoff: true, TimerF: f.timerF, Deliverable: true}, nil
}

func (f *fakeActions) Queued(m *kv.Message) {
	f.mu.Lock()
	f.queued = append(f.queued, m.ID)
	f.mu.Unlock()
}

const token = "s3cret"

func startAdmin(t *testing.T, o kv.Options, maxBody int) (*testServer, *fakeActions) {
	t.Helper()
	s := openKV(t, o)
	a := &fakeActions{Store: s}
	ts := startServer(t, Config{Admin: AdminConfig{Token: token, Actions: a, MaxBody: maxBody}}, s)
	ts.store = s
	return ts, a
}

// call sends an API request and decodes the JSON answer into out (if set).
func call(t *testing.T, method, url, tok string, body any, out any) int {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, url, res.StatusCode, raw, err)
		}
	}
	return res.StatusCode
}

type apiErr struct {
	Error  string   `json:"error"`
	TimerF []string `json:"timer_f"`
}

func TestInjectStoresAFinalMessageAndWakesRelay(t *testing.T) {
	ts, a := startAdmin(t, kv.Options{}, 0)
	body := "hi from the CRM | ${system(id)} \r\n ümlaut "
	var got struct{ ID string }
	code := call(t, "POST", ts.url+"/api/v1/messages", token,
		map[string]string{"from": "crm@example.com", "to": "1001@127.0.0.1", "body": body}, &got)
	if code != http.StatusCreated || len(got.ID) != 26 {
		t.Fatalf("inject: %d %+v", code, got)
	}
	m, err := ts.store.Get(got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != body || m.From != "crm@example.com" || m.To != "1001@127.0.0.1" || m.ContentType != "text/plain" ||
		m.BodySource != kv.BodyAPI || !m.BodyFinal || m.State != kv.StateQueued || m.CoreUUID != "" {
		t.Fatalf("stored %+v", m)
	}
	if len(a.queued) != 1 || a.queued[0] != got.ID {
		t.Fatalf("relay told about %v", a.queued)
	}

	// Any bytes through base64; the order follows intake for messages without
	// a Core-UUID.
	raw := []byte{0, 0xff, 0xfe, '\n', 'x'}
	code = call(t, "POST", ts.url+"/api/v1/messages", token, map[string]string{"from": "crm@example.com",
		"to": "1001@127.0.0.1", "content_type": "application/octet-stream", "from_full": `"CRM" <sip:crm@example.com>`,
		"body_base64": base64.StdEncoding.EncodeToString(raw)}, &got)
	if code != http.StatusCreated {
		t.Fatalf("inject base64: %d", code)
	}
	q, _ := ts.store.Queue("1001@127.0.0.1", 0)
	if len(q) != 2 || !bytes.Equal(q[1].Body, raw) || q[1].FromFull != `"CRM" <sip:crm@example.com>` {
		t.Fatalf("queue %+v", q)
	}
}

func TestInjectValidates(t *testing.T) {
	ts, a := startAdmin(t, kv.Options{Quota: 1}, 16)
	ok := map[string]string{"from": "crm@example.com", "to": "1001@127.0.0.1", "body": "x"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		if v == "<drop>" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		body any
		want int
	}{
		{with("from", "crm"), 400},
		{with("to", "1001@"), 400},
		{with("to", "1001@127.0.0.1\r\nX-Evil: 1"), 400},
		{with("to", "1001;transport=tcp@127.0.0.1"), 400},
		{with("to", "a@b@c"), 400},
		{with("from_full", "<sip:crm@example.com>\r\nVia: x"), 400},
		{with("content_type", "text/plain\r\nX: y"), 400},
		{with("content_type", "not a type"), 400},
		{with("body", "<drop>"), 400},
		{with("body_base64", "aGk="), 400}, // both bodies
		{map[string]string{"from": "crm@example.com", "to": "1001@127.0.0.1", "body_base64": "!!"}, 400},
		{`{"from": "crm@example.com", "to": "1001@127.0.0.1", "body": "x", "extra": 1}`, 400},
		{`not json`, 400},
		{with("body", strings.Repeat("x", 17)), 413},
		{`{"from": "crm@example.com", "to": "1001@127.0.0.1", "body": "` + strings.Repeat("x", 64<<10) + `"}`, 413},
	} {
		var e apiErr
		if code := call(t, "POST", ts.url+"/api/v1/messages", token, c.body, &e); code != c.want || e.Error == "" {
			t.Errorf("%v: %d %q, want %d with an error", c.body, code, e.Error, c.want)
		}
	}
	if all, _ := ts.store.All(); len(all) != 0 {
		t.Fatalf("%d invalid messages stored", len(all))
	}
	if code := call(t, "POST", ts.url+"/api/v1/messages", token, with("body", strings.Repeat("x", 16)), nil); code != 201 {
		t.Fatalf("body at the limit: %d", code)
	}
	var e apiErr
	if code := call(t, "POST", ts.url+"/api/v1/messages", token, ok, &e); code != http.StatusTooManyRequests || !strings.Contains(e.Error, "quota 1") {
		t.Fatalf("over quota: %d %q", code, e.Error)
	}
	if len(a.queued) != 1 {
		t.Fatalf("relay told about %d messages", len(a.queued))
	}
	if code := call(t, "POST", ts.url+"/api/v1/messages", "", ok, &e); code != http.StatusUnauthorized {
		t.Fatalf("without token: %d", code)
	}
}

func TestPurgeMessageAndQueue(t *testing.T) {
	ts, _ := startAdmin(t, kv.Options{Outbox: true}, 0)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		id, err := ts.store.Enqueue(ctx, &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1", Body: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	other, _ := ts.store.Enqueue(ctx, &kv.Message{From: "1000@127.0.0.1", To: "1002@127.0.0.1"})
	if _, err := ts.store.BeginAttempt(ctx, ids[1], "a1", time.Now()); err != nil {
		t.Fatal(err)
	}

	var p purgeJSON
	if code := call(t, "DELETE", ts.url+"/api/v1/messages/"+ids[0], token, nil, &p); code != 200 || p.Purged != 1 || p.IDs[0] != ids[0] {
		t.Fatalf("purge one: %d %+v", code, p)
	}
	var e apiErr
	if code := call(t, "DELETE", ts.url+"/api/v1/messages/"+ids[0], token, nil, &e); code != http.StatusConflict {
		t.Fatalf("purge again: %d %q", code, e.Error)
	}
	if code := call(t, "DELETE", ts.url+"/api/v1/messages/01HZZZZZZZZZZZZZZZZZZZZZZZ", token, nil, &e); code != http.StatusNotFound {
		t.Fatalf("purge unknown: %d", code)
	}
	if code := call(t, "DELETE", ts.url+"/api/v1/queue/"+url.PathEscape("1001@127.0.0.1"), token, nil, &p); code != 200 ||
		p.Purged != 4 || len(p.InFlight) != 1 || p.InFlight[0] != ids[1] {
		t.Fatalf("purge queue: %d %+v", code, p)
	}
	for _, id := range ids {
		if m, _ := ts.store.Get(id); m.State != kv.StatePurged || m.History[len(m.History)-1].Kind != kv.EventPurged {
			t.Fatalf("%s: %s", id, m.State)
		}
	}
	if m, _ := ts.store.Get(other); m.State != kv.StateQueued {
		t.Fatalf("other recipient's message %s", m.State)
	}
	if code := call(t, "DELETE", ts.url+"/api/v1/queue/nobody", token, nil, &e); code != http.StatusBadRequest {
		t.Fatalf("bad aor: %d", code)
	}
	if code := call(t, "DELETE", ts.url+"/api/v1/queue/1001@127.0.0.1", "wrong", nil, &e); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
}

func TestRetryMessageQueueAndDeadLetter(t *testing.T) {
	ts, a := startAdmin(t, kv.Options{}, 0)
	ctx := context.Background()
	id, _ := ts.store.Enqueue(ctx, &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1"})
	dead, _ := ts.store.Enqueue(ctx, &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1"})
	if err := ts.store.DeadLetter(ctx, dead, "refused 5 times"); err != nil {
		t.Fatal(err)
	}
	delivered, _ := ts.store.Enqueue(ctx, &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1"})
	ts.store.BeginAttempt(ctx, delivered, "a1", time.Now())
	ts.store.Delivered(ctx, delivered, "a1", "Sent")

	var out struct {
		RetryOutcome
		Requeued bool `json:"requeued"`
	}
	if code := call(t, "POST", ts.url+"/api/v1/messages/"+id+"/retry", token, nil, &out); code != 200 || !out.Backoff {
		t.Fatalf("retry message: %d %+v", code, out)
	}
	if code := call(t, "POST", ts.url+"/api/v1/queue/1001@127.0.0.1/retry", token, nil, &out); code != 200 {
		t.Fatalf("retry queue: %d", code)
	}
	if code := call(t, "POST", ts.url+"/api/v1/messages/"+dead+"/retry", token, nil, &out); code != 200 || !out.Requeued {
		t.Fatalf("retry dead letter: %d %+v", code, out)
	}
	if m, _ := ts.store.Get(dead); m.State != kv.StateQueued || m.Refusals != 0 {
		t.Fatalf("dead letter after retry: %s", m.State)
	}
	var e apiErr
	if code := call(t, "POST", ts.url+"/api/v1/messages/"+delivered+"/retry", token, nil, &e); code != http.StatusConflict {
		t.Fatalf("retry delivered: %d %q", code, e.Error)
	}
	want := []string{"1001@127.0.0.1|" + id + "|false", "1001@127.0.0.1||false", "1001@127.0.0.1|" + dead + "|false"}
	if fmt.Sprint(a.retries) != fmt.Sprint(want) {
		t.Fatalf("retries %v, want %v", a.retries, want)
	}

	// Timer F: refused without force, with the held ids; done with force.
	a.timerF = []string{id}
	a.released = false
	if code := call(t, "POST", ts.url+"/api/v1/messages/"+id+"/retry", token, nil, &e); code != http.StatusConflict ||
		len(e.TimerF) != 1 || !strings.Contains(e.Error, "force=1") || a.released {
		t.Fatalf("retry in Timer F: %d %+v", code, e)
	}
	if code := call(t, "POST", ts.url+"/api/v1/messages/"+id+"/retry?force=1", token, nil, &out); code != 200 || !a.released {
		t.Fatalf("forced retry: %d", code)
	}
}

// With --domains set, only this server's users can be sent to, as at intake.
func TestInjectOnlyToLocalDomains(t *testing.T) {
	s := openKV(t, kv.Options{})
	a := &fakeActions{Store: s}
	ts := startServer(t, Config{Admin: AdminConfig{Token: token, Actions: a, Domains: []string{"Example.COM"}}}, s)
	var e apiErr
	if code := call(t, "POST", ts.url+"/api/v1/messages", token,
		map[string]string{"from": "crm@elsewhere.net", "to": "1001@elsewhere.net", "body": "x"}, &e); code != 400 || !strings.Contains(e.Error, "--domains") {
		t.Fatalf("non-local recipient: %d %q", code, e.Error)
	}
	if code := call(t, "POST", ts.url+"/api/v1/messages", token,
		map[string]string{"from": "crm@elsewhere.net", "to": "1001@example.com", "body": "x"}, nil); code != 201 {
		t.Fatalf("local recipient (domain in another case): %d", code)
	}
	if all, _ := s.All(); len(all) != 1 || all[0].To != "1001@example.com" {
		t.Fatalf("stored %d messages", len(all))
	}
}
