package relay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

type wakes struct {
	mu   sync.Mutex
	aors []string
}

func (w *wakes) wake(aor string) {
	w.mu.Lock()
	w.aors = append(w.aors, aor)
	w.mu.Unlock()
}

func (w *wakes) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.aors)
}

func runBodies(t *testing.T, b *Bodies) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func store(t *testing.T, s *kv.Store, body []byte, src kv.BodySource) *kv.Message {
	t.Helper()
	m := &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1", Body: body, BodySource: src}
	if _, err := s.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExactBodyReplacesQueryCopy(t *testing.T) {
	s := openStore(t)
	w := &wakes{}
	b := NewBodies(s, w.wake, time.Hour, nil, nil)
	runBodies(t, b)
	// The query copy decoded the literal "%41" and lost the outer spaces.
	m := store(t, s, []byte("A x"), kv.BodyQuery)
	b.Expect(m.ID, m.To, m.Received)
	b.Confirm(context.Background(), m.ID, "", 0, []byte(" %41 x "))
	got, err := s.Get(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != " %41 x " || got.BodySource != kv.BodyESL || !got.BodyFinal || got.BodyFallback {
		t.Fatalf("stored %+v", got)
	}
	if w.n() != 1 || b.Stats().Exact != 1 {
		t.Fatalf("wakes %d stats %+v", w.n(), b.Stats())
	}
}

func TestGraceFallsBackToQueryCopyOrRecordsNoBody(t *testing.T) {
	s := openStore(t)
	w := &wakes{}
	b := NewBodies(s, w.wake, 50*time.Millisecond, nil, nil)
	runBodies(t, b)
	q := store(t, s, []byte("query copy"), kv.BodyQuery)
	none := store(t, s, nil, kv.BodyAwaiting)
	b.Expect(q.ID, q.To, q.Received)
	b.Expect(none.ID, none.To, none.Received)
	waitUntil(t, "grace", 5*time.Second, func() bool { st := b.Stats(); return st.Query == 1 && st.Missing == 1 })
	got, _ := s.Get(q.ID)
	if !got.BodyFinal || !got.BodyFallback || string(got.Body) != "query copy" || got.State != kv.StateQueued {
		t.Fatalf("query-copy message %+v", got)
	}
	got, _ = s.Get(none.ID)
	if got.State != kv.StateNoBody {
		t.Fatalf("bodiless message in state %s", got.State)
	}
	if w.n() != 1 {
		t.Fatalf("%d wakes, want 1 (only the deliverable one)", w.n())
	}
	// The exact body arriving after all brings the bodiless message back.
	b.Confirm(context.Background(), none.ID, "", 0, []byte("late"))
	got, _ = s.Get(none.ID)
	if got.State != kv.StateQueued || string(got.Body) != "late" {
		t.Fatalf("late body: %+v", got)
	}
	if q, _ := s.Queue(none.To, 0); len(q) != 2 {
		t.Fatalf("%d queued, want 2", len(q))
	}
}

func TestAwaitingBodiesAreTakenOverAfterRestart(t *testing.T) {
	s := openStore(t)
	m := store(t, s, []byte("q"), kv.BodyQuery)
	b := NewBodies(s, func(string) {}, 30*time.Millisecond, nil, nil)
	runBodies(t, b) // never told with Expect: it must find the message itself
	waitUntil(t, "grace", 5*time.Second, func() bool { return b.Stats().Query == 1 })
	got, _ := s.Get(m.ID)
	if !got.BodyFinal {
		t.Fatal("message still awaiting its body")
	}
	// Its first send counts as uncertain: FreeSWITCH may have delivered it itself.
	if got.InFlight == "" {
		t.Fatal("a message of the last run awaiting its body is not marked uncertain")
	}
	if got, err := s.BeginAttempt(context.Background(), m.ID, m.ID+"-1", time.Now()); err != nil || got.UncertainResends != 1 {
		t.Fatalf("first send: %+v %v", got, err)
	}
}

func TestUnknownIDIsCountedNotStored(t *testing.T) {
	s := openStore(t)
	b := NewBodies(s, func(string) {}, time.Hour, nil, nil)
	b.Confirm(context.Background(), "01NOTSTORED0000000000000000", "", 0, []byte("x"))
	if b.Stats().Unknown != 1 {
		t.Fatalf("stats %+v", b.Stats())
	}
}

func TestBodyFromAnotherEventIsRefused(t *testing.T) {
	s := openStore(t)
	b := NewBodies(s, func(string) {}, time.Hour, nil, nil)
	m := &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1", Body: []byte("query"),
		BodySource: kv.BodyQuery, CoreUUID: "core-a", EventSeq: 42}
	if _, err := s.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	b.Confirm(context.Background(), m.ID, "core-a", 43, []byte("not mine"))
	b.Confirm(context.Background(), m.ID, "core-b", 42, []byte("not mine either"))
	got, _ := s.Get(m.ID)
	if string(got.Body) != "query" || got.BodyFinal {
		t.Fatalf("stored %+v", got)
	}
	b.Confirm(context.Background(), m.ID, "core-a", 42, []byte("exact"))
	got, _ = s.Get(m.ID)
	if string(got.Body) != "exact" || b.Stats().Unknown != 2 || b.Stats().Exact != 1 {
		t.Fatalf("stored %+v, stats %+v", got, b.Stats())
	}
}

// storeExact stores a message whose body was exact at intake, as the chatplan
// handler does when the URL's MD5 matched.
func storeExact(t *testing.T, s *kv.Store, body string) *kv.Message {
	t.Helper()
	m := &kv.Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1", Body: []byte(body),
		BodySource: kv.BodyQueryExact}
	if _, err := s.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestESLBodyCrossChecksExactIntakeBody(t *testing.T) {
	s := openStore(t)
	w := &wakes{}
	b := NewBodies(s, w.wake, time.Hour, nil, nil)
	runBodies(t, b)
	same := storeExact(t, s, " %41 x ")
	other := storeExact(t, s, "intake copy")
	for _, m := range []*kv.Message{same, other} {
		b.Expect(m.ID, m.To, m.Received)
	}
	b.Confirm(context.Background(), same.ID, "", 0, []byte(" %41 x "))
	b.Confirm(context.Background(), other.ID, "", 0, []byte("esl copy"))
	if st := b.Stats(); st.Checked != 1 || st.Differed != 1 || st.Exact != 0 {
		t.Fatalf("stats %+v", st)
	}
	if w.n() != 2 {
		t.Fatalf("%d wakes, want 2", w.n())
	}
	got, _ := s.Get(other.ID)
	if string(got.Body) != "esl copy" || got.BodySource != kv.BodyESL || !got.BodyFinal {
		t.Fatalf("differing copy: stored %+v", got)
	}
	got, _ = s.Get(same.ID)
	if string(got.Body) != " %41 x " || got.BodySource != kv.BodyESL {
		t.Fatalf("same copy: stored %+v", got)
	}
}

// TestExactIntakeBodyWithoutESLEvent: the grace ends the wait for the event of a
// body exact at intake and delivers that body as it is; a restart during the
// grace treats the message as one whose final answer FreeSWITCH may not have had.
func TestExactIntakeBodyWithoutESLEvent(t *testing.T) {
	s := openStore(t)
	m := storeExact(t, s, "  edges  ")
	if got, _ := s.AwaitingBody(); len(got) != 1 {
		t.Fatalf("%d messages awaiting their ESL event, want 1", len(got))
	}
	b := NewBodies(s, func(string) {}, 30*time.Millisecond, nil, nil)
	runBodies(t, b) // as after a restart: it finds the message itself
	waitUntil(t, "grace", 5*time.Second, func() bool { return b.Stats().Unconfirmed == 1 })
	got, _ := s.Get(m.ID)
	if string(got.Body) != "  edges  " || got.BodySource != kv.BodyQueryExact || !got.BodyFinal || !got.BodyFallback {
		t.Fatalf("stored %+v", got)
	}
	if got.InFlight == "" {
		t.Fatal("a message of the last run awaiting its ESL event is not marked uncertain")
	}
	if got, _ := s.AwaitingBody(); len(got) != 0 {
		t.Fatalf("%d messages still awaiting after the grace", len(got))
	}
}

// pagingStore records the pages the takeover asks for.
type pagingStore struct {
	*kv.Store
	mu       sync.Mutex
	pages    int
	maxLimit int
}

func (p *pagingStore) AwaitingBodyPage(from []byte, limit int) ([]kv.Awaiting, []byte, error) {
	p.mu.Lock()
	p.pages++
	p.maxLimit = max(p.maxLimit, limit)
	p.mu.Unlock()
	return p.Store.AwaitingBodyPage(from, limit)
}

// TestTakeoverOfTheLastRunIsBatched: the messages a restart finds awaiting their
// body are taken over a bounded batch at a time, every one of them, while a
// message of this run awaiting its body is not taken for one of the last run.
func TestTakeoverOfTheLastRunIsBatched(t *testing.T) {
	s := openStore(t)
	var last []*kv.Message
	for range 7 {
		last = append(last, store(t, s, []byte("q"), kv.BodyQuery))
	}
	ps := &pagingStore{Store: s}
	b := NewBodies(ps, func(string) {}, 30*time.Millisecond, nil, nil)
	b.maxPending, b.takeoverBatch, b.maxDue = 3, 2, 2
	mine := store(t, s, []byte("mine"), kv.BodyQuery)
	b.Expect(mine.ID, mine.To, mine.Received)
	runBodies(t, b)
	waitUntil(t, "grace", 10*time.Second, func() bool { return b.Stats().Query == 8 })
	for _, m := range last {
		got, _ := s.Get(m.ID)
		if !got.BodyFinal || got.InFlight == "" {
			t.Fatalf("message of the last run: final %v, in flight %q", got.BodyFinal, got.InFlight)
		}
	}
	if got, _ := s.Get(mine.ID); !got.BodyFinal || got.InFlight != "" {
		t.Fatalf("message of this run: final %v, in flight %q", got.BodyFinal, got.InFlight)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.pages < 4 || ps.maxLimit > 2 {
		t.Fatalf("%d pages of at most %d, want 4 or more of at most 2", ps.pages, ps.maxLimit)
	}
}
