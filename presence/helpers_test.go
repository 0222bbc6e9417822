package presence

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/kv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// frame is one block of an annotated ESL transcript (testdata/esl/README.md, "Format").
type frame struct {
	dir  string // RECV or SEND
	data []byte
}

// readTranscript splits testdata/esl/<name> into its RECV/SEND blocks, each exactly
// the byte count its "### <time> RECV|SEND <n> bytes" line gives.
func readTranscript(t testing.TB, name string) []frame {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "esl", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []frame
	r := bufio.NewReader(bytes.NewReader(raw))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return out
		}
		f := strings.Fields(line)
		if len(f) != 5 || f[0] != "###" || (f[2] != "RECV" && f[2] != "SEND") || f[4] != "bytes" {
			continue
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			t.Fatalf("%s: %q", name, line)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			t.Fatalf("%s: short block after %q: %v", name, line, err)
		}
		out = append(out, frame{dir: f[2], data: data})
	}
}

// frameBody splits a frame into its Content-Type and body.
func frameBody(f []byte) (ctype, body string) {
	head, body, _ := strings.Cut(string(f), "\n\n")
	for _, l := range strings.Split(head, "\n") {
		if v, ok := strings.CutPrefix(l, "Content-Type: "); ok {
			ctype = v
		}
	}
	return ctype, body
}

// events parses every text/event-json frame of a transcript with esl.ParseJSON.
func events(t testing.TB, name string) []*esl.Event {
	t.Helper()
	var out []*esl.Event
	for _, f := range readTranscript(t, name) {
		if f.dir != "RECV" {
			continue
		}
		ct, body := frameBody(f.data)
		if ct != "text/event-json" {
			continue
		}
		e, err := esl.ParseJSON([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no JSON events", name)
	}
	return out
}

// apiAnswer returns the body of the api/response that followed the SEND of cmd.
func apiAnswer(t testing.TB, name, cmd string) string {
	t.Helper()
	fs := readTranscript(t, name)
	for i, f := range fs {
		if f.dir == "SEND" && strings.HasPrefix(string(f.data), cmd+"\n") {
			for _, g := range fs[i+1:] {
				if ct, body := frameBody(g.data); g.dir == "RECV" && ct == "api/response" {
					return body
				}
			}
		}
	}
	t.Fatalf("%s: no answer to %q", name, cmd)
	return ""
}

// find returns the event with this subclass (or name) and sequence.
func find(t testing.TB, evs []*esl.Event, kind string, seq uint64) *esl.Event {
	t.Helper()
	for _, e := range evs {
		if (e.Subclass == kind || e.Name == kind) && e.Sequence == seq {
			return e
		}
	}
	t.Fatalf("no %s event with sequence %d", kind, seq)
	return nil
}

// rewrite returns a copy of e with headers replaced (and Sequence/CoreUUID kept in
// step), for tests that need the same captured event under another number or AOR.
func rewrite(e *esl.Event, kv ...string) *esl.Event {
	c := *e
	c.Headers = append([]esl.Header(nil), e.Headers...)
	for i := 0; i+1 < len(kv); i += 2 {
		for j := range c.Headers {
			if strings.EqualFold(c.Headers[j].Name, kv[i]) {
				c.Headers[j].Value = kv[i+1]
			}
		}
		switch kv[i] {
		case "Event-Sequence":
			c.Sequence, _ = strconv.ParseUint(kv[i+1], 10, 64)
		case "Core-UUID":
			c.CoreUUID = kv[i+1]
		}
	}
	return &c
}

func eventAt(e *esl.Event) time.Time {
	us, _ := strconv.ParseInt(e.Get("Event-Date-Timestamp"), 10, 64)
	return time.UnixMicro(us)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// calls records OnReachable calls.
type calls struct {
	mu  sync.Mutex
	aor []string
}

func (c *calls) record(aor string) { c.mu.Lock(); c.aor = append(c.aor, aor); c.mu.Unlock() }

func (c *calls) count(aor string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.aor {
		if a == aor {
			n++
		}
	}
	return n
}

// harness is a Map on a real bbolt file, a settable clock and a call recorder.
type harness struct {
	t     *testing.T
	path  string
	store *kv.Store
	m     *Map
	clk   *clock
	woken *calls
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "sipsilo.db"), woken: &calls{},
		clk: &clock{t: time.Date(2026, 11, 26, 3, 46, 50, 0, time.UTC)}}
	h.open()
	return h
}

// open (re)opens the store and builds a new Map from it, as a restart does.
func (h *harness) open() {
	h.t.Helper()
	s, err := kv.Open(h.path, kv.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { s.Close(context.Background()) })
	h.store = s
	h.m, err = New(Config{Store: s, Now: h.clk.Now, OnReachable: h.woken.record})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) restart() {
	h.t.Helper()
	if err := h.store.Close(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

// replay applies events in order, with the clock following FreeSWITCH's event time
// as it would in real life.
func (h *harness) replay(evs ...*esl.Event) {
	h.t.Helper()
	for _, e := range evs {
		if at := eventAt(e); !at.IsZero() && at.After(h.clk.Now()) {
			h.clk.Set(at.Add(time.Millisecond))
		}
		if err := applyESL(h.m, context.Background(), e); err != nil {
			h.t.Fatalf("Apply %s %s seq %d: %v", e.Name, e.Subclass, e.Sequence, err)
		}
	}
}

// replayUntil replays evs up to and including the event with sequence seq.
func (h *harness) replayUntil(evs []*esl.Event, seq uint64) []*esl.Event {
	h.t.Helper()
	for i, e := range evs {
		h.replay(e)
		if e.Sequence == seq {
			return evs[i+1:]
		}
	}
	h.t.Fatalf("no event with sequence %d", seq)
	return nil
}

func (h *harness) stored() map[string][]byte {
	h.t.Helper()
	recs, err := h.store.LoadReach()
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

func (h *harness) want(aor string, registered bool, reach Reach, deliverable bool) State {
	h.t.Helper()
	st := h.m.Get(aor)
	if st.Registered != registered || st.Reach != reach || h.m.Deliverable(aor) != deliverable {
		h.t.Fatalf("%s: registered=%v reach=%s deliverable=%v (evidence %q, seq %d); want %v %s %v",
			aor, st.Registered, st.Reach, h.m.Deliverable(aor), st.Evidence, st.LastSeq, registered, reach, deliverable)
	}
	return st
}

// failingStore wraps a store and fails writes while fail is set.
type failingStore struct {
	Store
	mu   sync.Mutex
	fail bool
}

var errDiskFull = errors.New("disk full (test)")

func (f *failingStore) set(v bool) { f.mu.Lock(); f.fail = v; f.mu.Unlock() }

func (f *failingStore) PutReach(ctx context.Context, aor string, rec []byte) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return fmt.Errorf("put %s: %w", aor, errDiskFull)
	}
	return f.Store.PutReach(ctx, aor, rec)
}

type eslEvent = esl.Event

// TranslateESL is the FreeSWITCH adapter's translation of an ESL event
// (freeswitch.PresenceEvent), set by adapter_test.go. Presence's tests replay the
// captured FreeSWITCH events through it, as the Router does.
var TranslateESL func(*esl.Event) (Event, bool, error)

// applyESL applies one FreeSWITCH event as the Router does.
func applyESL(m *Map, ctx context.Context, e *esl.Event) error {
	ev, ok, err := TranslateESL(e)
	if err != nil || !ok {
		return err
	}
	return m.ApplyEvent(ctx, ev)
}

// wantRemembered checks that aor's record in the store holds no registration and
// remembers its one device as ended (docs/decisions.md §28).
func (h *harness) wantRemembered(aor string) {
	h.t.Helper()
	rec, ok := h.stored()[aor]
	if !ok {
		h.t.Fatalf("%s: no record; want the ended device remembered", aor)
	}
	st, err := decodeState(aor, rec)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(st.Registrations) != 0 || len(st.Ended) != 1 || st.Ended[0].EndedAt.IsZero() {
		h.t.Fatalf("%s: stored %+v; want no registration and one ended device", aor, st)
	}
}
