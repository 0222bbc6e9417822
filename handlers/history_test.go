package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// fakeHistory serves n messages to 1001, one second apart, newest last.
type fakeHistory struct {
	entries []HistoryEntry
	gotAOR  string
}

func (f *fakeHistory) History(_ context.Context, aor string, before time.Time, limit int) ([]HistoryEntry, error) {
	f.gotAOR = aor
	var out []HistoryEntry
	for i := len(f.entries) - 1; i >= 0 && len(out) < limit; i-- {
		if before.IsZero() || f.entries[i].Received.Before(before) {
			out = append(out, f.entries[i])
		}
	}
	return out, nil
}

func (f *fakeHistory) Message(_ context.Context, id string) (*HistoryEntry, []HistoryEvent, error) {
	for i := range f.entries {
		if f.entries[i].ID == id {
			return &f.entries[i], []HistoryEvent{{Seq: 1, Kind: "received", State: "queued"}, {Seq: 2, Kind: "delivered", State: "delivered"}}, nil
		}
	}
	return nil, nil, ErrNoMessage
}

func apiGet(t *testing.T, base, path, token string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if into != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, b)
		}
	}
	return res.StatusCode
}

func TestHistoryAPI(t *testing.T) {
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	h := &fakeHistory{}
	for i := range 5 {
		h.entries = append(h.entries, HistoryEntry{ID: "01JFIXTURE00000000000000" + string(rune('A'+i)) + "Z",
			From: "1000@127.0.0.1", To: "1001@127.0.0.1", ContentType: "text/plain", State: "delivered",
			Body: []byte("msg " + string(rune('0'+i))), Received: base.Add(time.Duration(i) * time.Second)})
	}
	h.entries[4].Body = []byte{0xff, 0xfe, 'x'}
	ts := startServer(t, Config{Admin: AdminConfig{Token: "s3cret", History: h}}, nil)

	if c := apiGet(t, ts.url, "/api/v1/history?aor=1001@127.0.0.1", "", nil); c != http.StatusUnauthorized {
		t.Fatalf("no token: %d", c)
	}
	if c := apiGet(t, ts.url, "/api/v1/history?aor=1001@127.0.0.1", "wrong", nil); c != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", c)
	}
	var page struct {
		Messages []struct {
			ID         string  `json:"id"`
			Body       *string `json:"body"`
			BodyBase64 []byte  `json:"body_base64"`
		} `json:"messages"`
		Next string `json:"next_before"`
	}
	if c := apiGet(t, ts.url, "/api/v1/history?aor="+url.QueryEscape("1001@127.0.0.1")+"&limit=3", "s3cret", &page); c != http.StatusOK {
		t.Fatalf("history: %d", c)
	}
	if len(page.Messages) != 3 || page.Messages[0].ID != h.entries[4].ID || page.Next == "" {
		t.Fatalf("first page %+v", page)
	}
	if page.Messages[0].Body != nil || string(page.Messages[0].BodyBase64) != "\xff\xfex" {
		t.Fatalf("non-UTF-8 body not given byte for byte: %+v", page.Messages[0])
	}
	if page.Messages[1].Body == nil || *page.Messages[1].Body != "msg 3" {
		t.Fatalf("text body: %+v", page.Messages[1])
	}
	next := page.Next
	page.Messages, page.Next = nil, ""
	if c := apiGet(t, ts.url, "/api/v1/history?aor=1001@127.0.0.1&limit=3&before="+url.QueryEscape(next), "s3cret", &page); c != http.StatusOK {
		t.Fatalf("page 2: %d", c)
	}
	if len(page.Messages) != 2 || page.Messages[0].ID != h.entries[1].ID || page.Next != "" {
		t.Fatalf("second page %+v", page)
	}
	for _, bad := range []string{"/api/v1/history", "/api/v1/history?aor=x&limit=-1", "/api/v1/history?aor=x&before=yesterday"} {
		if c := apiGet(t, ts.url, bad, "s3cret", nil); c != http.StatusBadRequest {
			t.Fatalf("%s: %d", bad, c)
		}
	}

	var one struct {
		ID     string `json:"id"`
		Events []struct {
			Seq  int    `json:"seq"`
			Kind string `json:"kind"`
		} `json:"events"`
	}
	if c := apiGet(t, ts.url, "/api/v1/messages/"+h.entries[2].ID, "s3cret", &one); c != http.StatusOK {
		t.Fatalf("message: %d", c)
	}
	if one.ID != h.entries[2].ID || len(one.Events) != 2 || one.Events[1].Kind != "delivered" {
		t.Fatalf("message %+v", one)
	}
	if c := apiGet(t, ts.url, "/api/v1/messages/01JNOSUCHMESSAGE0000000000", "s3cret", nil); c != http.StatusNotFound {
		t.Fatalf("unknown id: %d", c)
	}
}

func TestAdminAPIOffWithoutTokenOrMirror(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	if c := apiGet(t, ts.url, "/api/v1/history?aor=x", "", nil); c != http.StatusForbidden {
		t.Fatalf("no token configured: %d", c)
	}
	ts = startServer(t, Config{Admin: AdminConfig{Token: "t"}}, nil)
	if c := apiGet(t, ts.url, "/api/v1/history?aor=x", "t", nil); c != http.StatusServiceUnavailable {
		t.Fatalf("no mirror: %d", c)
	}
}
