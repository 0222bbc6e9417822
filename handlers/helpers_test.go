package handlers

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sipsilo/sipsilo/kv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer collects log output so tests can assert what reached which level.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type testServer struct {
	url   string
	store *kv.Store
	logs  *logBuffer
}

// startServer runs the real handlers on 127.0.0.1 over a real bbolt file.
func startServer(t *testing.T, cfg Config, store Store) *testServer {
	t.Helper()
	ts := &testServer{logs: &logBuffer{}}
	if cfg.Chatplan.BodyEvents == nil {
		// The event socket is up unless a test says otherwise: a body that is
		// not exact at intake is owned only while it can still arrive.
		cfg.Chatplan.BodyEvents = eventsUp
	}
	if store == nil {
		s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(context.Background()) })
		ts.store, store = s, s
	}
	log := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e, err := New(cfg, store, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer("", e, log)
	done := make(chan struct{})
	go func() { defer close(done); Serve(srv, ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	ts.url = "http://" + ln.Addr().String()
	return ts
}

type answer struct {
	status int
	body   []byte
	doc    fsDoc
}

// fsDoc is the part of a FreeSWITCH XML document the tests look at.
type fsDoc struct {
	Sections []struct {
		Name   string `xml:"name,attr"`
		Result *struct {
			Status string `xml:"status,attr"`
		} `xml:"result"`
		Contexts []struct {
			Name    string `xml:"name,attr"`
			Actions []struct {
				App  string `xml:"application,attr"`
				Data string `xml:"data,attr"`
			} `xml:"extension>condition>action"`
		} `xml:"context"`
	} `xml:"section"`
}

// storedID returns the sipsilo_id of a chatplan answer that hands the message over
// (set sipsilo_id, then final), or "".
func (a answer) storedID() string {
	d := a.doc
	if len(d.Sections) != 1 || d.Sections[0].Name != "chatplan" || len(d.Sections[0].Contexts) != 1 {
		return ""
	}
	acts := d.Sections[0].Contexts[0].Actions
	if len(acts) != 2 || acts[0].App != "set" || acts[1].App != "final" {
		return ""
	}
	id, ok := strings.CutPrefix(acts[0].Data, "sipsilo_id=")
	if !ok {
		return ""
	}
	return id
}

func (a answer) notFound() bool {
	d := a.doc
	return len(d.Sections) == 1 && d.Sections[0].Name == "result" && d.Sections[0].Result != nil &&
		d.Sections[0].Result.Status == "not found"
}

// post sends one xml_curl-shaped request on a fresh connection, as FreeSWITCH does.
func post(t *testing.T, url, method, query string, form []byte) answer {
	t.Helper()
	a, err := tryPost(t, url, method, query, form)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tryPost is post that returns the transport error instead of failing the test.
func tryPost(t *testing.T, url, method, query string, form []byte) (answer, error) {
	t.Helper()
	if query != "" {
		query = "?" + query
	}
	req, err := http.NewRequest(method, url+ChatplanPath+query, bytes.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "freeswitch-xml/1.0")
	req.Close = true
	return tryDo(t, req)
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	a, err := tryDo(t, req)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tryDo(t *testing.T, req *http.Request) (answer, error) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: res.StatusCode, body: body}
	if res.StatusCode != http.StatusUnauthorized {
		if err := xml.Unmarshal(body, &a.doc); err != nil {
			t.Fatalf("status %d answer is not XML: %v\n%s", res.StatusCode, err, body)
		}
	}
	return a, nil
}

// fakeStore lets a test decide what the store does.
type fakeStore struct {
	enqueue  func(ctx context.Context, m *kv.Message) (string, error)
	mu       sync.Mutex
	released []string
}

func (f *fakeStore) Enqueue(ctx context.Context, m *kv.Message) (string, error) {
	return f.enqueue(ctx, m)
}

func (f *fakeStore) Release(_ context.Context, id, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, id)
	return nil
}

func (f *fakeStore) releasedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.released...)
}

var errDiskGone = errors.New("write sipsilo.db: input/output error")

func itoa(n int) string { return strconv.Itoa(n) }

// readOnlyFile hands bbolt a read-only descriptor: every write fails with EBADF, even
// for root.
func readOnlyFile(name string, _ int, _ os.FileMode) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY, 0)
}
