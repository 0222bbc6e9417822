package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Ensure Open can run twice on the same database and records one version.
func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	m, srv := testMirror(t, Config{})
	m2, err := Open(context.Background(), Config{DSN: quietDSN(srv)})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer m2.Close()
	rows, err := m.db.Query("SELECT version FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if len(got) != latestVersion || got[len(got)-1] != latestVersion {
		t.Fatalf("schema_version=%v, want 1..%d once each", got, latestVersion)
	}
	for _, table := range []string{"messages", "message_events"} {
		if got, want := count(t, m.db, table), 0; got != want {
			t.Errorf("%s has %d rows, want %d", table, got, want)
		}
	}
}

// Ensure 10,000 records of 2,000 messages give exactly 2,000 rows in
// their final state and 10,000 events, and that replaying all of them, or
// only older ones, changes nothing.
func TestConvergesAndReplaysIdempotently(t *testing.T) {
	t.Parallel()
	m, _ := testMirror(t, Config{})
	const nMsgs, perMsg = 2000, 5
	recs := genRecords(nMsgs, perMsg, 0)
	src := newOutbox(recs)
	drain(t, m, src)

	if got, want := count(t, m.db, "messages"), nMsgs; got != want {
		t.Fatalf("messages=%d, want %d", got, want)
	}
	if got, want := count(t, m.db, "message_events"), nMsgs*perMsg; got != want {
		t.Fatalf("message_events=%d, want %d", got, want)
	}
	checkFinal(t, m, recs)
	st := m.Stats()
	if st.Records != uint64(len(recs)) || st.Batches < uint64(len(recs)/500) || st.Errors != 0 || st.LastError != "" {
		t.Errorf("stats %+v", st)
	}
	if st.Rows < uint64(len(recs)+nMsgs) {
		t.Errorf("stats rows %d < %d", st.Rows, len(recs)+nMsgs)
	}
	before := dump(t, m.db)

	// Everything again: as if the deletes had been lost.
	drain(t, m, newOutbox(recs))
	if got := dump(t, m.db); got != before {
		t.Fatal("replaying every record changed the tables")
	}
	// The first half again, alone: older snapshots must not win.
	drain(t, m, newOutbox(recs[:len(recs)/2]))
	if got := dump(t, m.db); got != before {
		t.Fatal("replaying older records changed the tables")
	}
	// Newest first, one record per batch: the row must not move backwards.
	rev := make([]Record, 0, 50)
	for i := len(recs) - 1; i >= len(recs)-50; i-- {
		r := recs[i]
		r.Seq = uint64(len(recs) - i)
		rev = append(rev, r)
	}
	m.cfg.BatchRows = 1
	drain(t, m, newOutbox(rev))
	if got := dump(t, m.db); got != before {
		t.Fatal("replaying records newest first changed the tables")
	}
}

// checkFinal compares every row and event with what recs say.
func checkFinal(t *testing.T, m *Mirror, recs []Record) {
	t.Helper()
	last := map[string]Record{}
	body := map[string][]byte{}
	events := map[[2]any]Record{}
	for _, r := range recs {
		last[r.MsgID] = r
		if r.Body != nil {
			body[r.MsgID] = r.Body
		}
		events[[2]any{r.MsgID, r.EventSeq}] = r
	}
	rows, err := m.db.Query("SELECT " + entryColumns + " FROM messages m")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			t.Fatal(err)
		}
		r, ok := last[e.ID]
		if !ok {
			t.Fatalf("unexpected message %s", e.ID)
		}
		want := entryOf(r, body[r.MsgID])
		if !sameEntry(*e, want) {
			t.Fatalf("message %s:\n got %+v\nwant %+v", e.ID, *e, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	erows, err := m.db.Query("SELECT message_id, seq, kind, state, at, detail FROM message_events")
	if err != nil {
		t.Fatal(err)
	}
	defer erows.Close()
	for erows.Next() {
		var id string
		var ev Event
		if err := erows.Scan(&id, &ev.Seq, &ev.Kind, &ev.State, &ev.At, &ev.Detail); err != nil {
			t.Fatal(err)
		}
		r, ok := events[[2]any{id, ev.Seq}]
		if !ok {
			t.Fatalf("unexpected event %s/%d", id, ev.Seq)
		}
		if want := eventOf(r); ev != want {
			t.Fatalf("event %s/%d: got %+v, want %+v", id, ev.Seq, ev, want)
		}
	}
	if err := erows.Err(); err != nil {
		t.Fatal(err)
	}
}

func entryOf(r Record, body []byte) HistoryEntry {
	e := HistoryEntry{ID: r.MsgID, From: r.From, To: r.To, FromFull: r.FromFull,
		ContentType: r.ContentType, State: r.State, LastResult: r.LastResult, Body: body,
		Received: dbTime(r.Received), Attempts: r.Attempts}
	if !r.Delivered.IsZero() {
		d := dbTime(r.Delivered)
		e.Delivered = &d
	}
	return e
}

func eventOf(r Record) Event {
	return Event{Seq: r.EventSeq, Kind: r.Kind, State: r.State, At: dbTime(r.At), Detail: r.Detail}
}

func sameEntry(a, b HistoryEntry) bool {
	if (a.Delivered == nil) != (b.Delivered == nil) ||
		(a.Delivered != nil && !a.Delivered.Equal(*b.Delivered)) {
		return false
	}
	a.Delivered, b.Delivered = nil, nil
	if !bytes.Equal(a.Body, b.Body) || (a.Body == nil) != (b.Body == nil) {
		return false
	}
	a.Body, b.Body = nil, nil
	return a.Received.Equal(b.Received) && a.ID == b.ID && a.From == b.From && a.To == b.To &&
		a.FromFull == b.FromFull && a.ContentType == b.ContentType && a.State == b.State &&
		a.LastResult == b.LastResult && a.Attempts == b.Attempts
}

// Ensure bodies come back byte for byte, and hostile or over-long text is
// stored (made valid, cut to size) rather than failing the batch.
func TestHostileValues(t *testing.T) {
	t.Parallel()
	m, _ := testMirror(t, Config{})
	big := bytes.Repeat([]byte("0123456789abcdef\x00'\"\\"), 64<<10/20+1)[:64<<10]
	bodies := [][]byte{
		[]byte(`it's "quoted"`),
		[]byte(`back\slash \' \" \\ \n \0 %_`),
		[]byte(`'; DROP TABLE messages; --`),
		[]byte("emoji 😀👍🏽 and 中文"),
		{0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0xbc},
		{0, 0, 'a', 0, 0x1a, '\r', '\n'},
		big,
		{}, // empty, not absent
	}
	var recs []Record
	for i, b := range bodies {
		r := makeRecord(i, 0, uint64(2*i+1))
		r.Body = b
		recs = append(recs, r)
		// A later record without a body must keep it.
		r2 := makeRecord(i, 1, uint64(2*i+2))
		recs = append(recs, r2)
	}
	// Hostile text in every string field of one more message.
	long := strings.Repeat("é", 2000) // 4,000 bytes
	h := makeRecord(len(bodies), 0, uint64(len(recs)+1))
	h.From = "o'brien\\@example.com 😀"
	h.To = strings.Repeat("x", 300)
	h.FromFull = long
	h.ContentType = "text/plain; charset=\"utf-8\"\x00"
	h.State = "a-very-long-state-name"
	h.LastResult = "bad \xff\xfe utf-8"
	h.Detail = "'; DROP TABLE message_events; --" + long
	recs = append(recs, h)

	drain(t, m, newOutbox(recs))
	for i, want := range bodies {
		e, evs, err := m.Message(context.Background(), msgID(i))
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if !bytes.Equal(e.Body, want) || e.Body == nil {
			t.Errorf("body %d: got %q (nil %v), want %q", i, trim(e.Body), e.Body == nil, trim(want))
		}
		if got, want := len(evs), 2; got != want {
			t.Errorf("body %d: %d events, want %d", i, got, want)
		}
	}
	e, evs, err := m.Message(context.Background(), h.MsgID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"From", e.From, h.From},
		{"To", e.To, strings.Repeat("x", 255)},
		{"FromFull", e.FromFull, strings.Repeat("é", 512)},
		{"ContentType", e.ContentType, h.ContentType},
		{"State", e.State, "a-very-long-stat"},
		{"LastResult", e.LastResult, "bad \uFFFD utf-8"},
		{"Detail", evs[0].Detail, clip(h.Detail, detailLen)},
	} {
		if c.got != c.want {
			t.Errorf("%s=%q, want %q", c.name, trim([]byte(c.got)), trim([]byte(c.want)))
		}
	}
	if got, want := count(t, m.db, "messages"), len(bodies)+1; got != want {
		t.Fatalf("messages=%d, want %d: the injection worked?", got, want)
	}
}

func trim(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// Ensure a stopped or crashed server only delays the mirror: Run retries,
// nothing is lost or written twice, and it converges after the restart.
func TestSurvivesDatabaseOutage(t *testing.T) {
	t.Parallel()
	m, srv := testMirror(t, Config{BatchRows: 50})
	const nMsgs, perMsg = 600, 5
	recs := genRecords(nMsgs, perMsg, 0)
	src := newOutbox(recs[:1000])

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, src) }()
	waitFor(t, "first batches", func() bool { return m.Stats().Batches >= 3 })

	srv.Stop()
	src.add(recs[1000:2000]...) // intake goes on while MySQL is down
	waitFor(t, "retries", func() bool { return m.Stats().Errors >= 3 })
	if m.Stats().LastError == "" {
		t.Error("no LastError while the server is down")
	}
	srv.Restart()
	waitFor(t, "drain after restart", func() bool { return src.len() == 0 })

	src.add(recs[2000:]...)
	waitFor(t, "more batches", func() bool { return src.len() < 500 })
	srv.Kill() // a commit may have been in flight: its batch is redone
	waitFor(t, "retries after crash", func() bool { return m.Stats().LastError != "" })
	srv.Restart()
	waitFor(t, "drain after crash", func() bool { return src.len() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if got, want := count(t, m.db, "messages"), nMsgs; got != want {
		t.Fatalf("messages=%d, want %d", got, want)
	}
	if got, want := count(t, m.db, "message_events"), len(recs); got != want {
		t.Fatalf("message_events=%d, want %d", got, want)
	}
	checkFinal(t, m, recs)
	if st := m.Stats(); st.LastError != "" {
		t.Errorf("LastError=%q after convergence", st.LastError)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ensure an outbox that cannot be read is retried and reported.
func TestOutboxReadErrorRetried(t *testing.T) {
	t.Parallel()
	m, _ := testMirror(t, Config{})
	recs := genRecords(10, 2, 0)
	src := newOutbox(recs)
	src.readErr = errors.New("bbolt is busy")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, src) }()
	waitFor(t, "errors", func() bool { return m.Stats().Errors >= 2 })
	if got, want := m.Stats().LastError, "read outbox: bbolt is busy"; got != want {
		t.Errorf("LastError=%q, want %q", got, want)
	}
	src.mu.Lock()
	src.readErr = nil
	src.mu.Unlock()
	waitFor(t, "drain", func() bool { return src.len() == 0 })
	cancel()
	<-done
	if got, want := count(t, m.db, "message_events"), len(recs); got != want {
		t.Fatalf("message_events=%d, want %d", got, want)
	}
}

// Ensure Close ends a running Run, and Run after Close refuses.
func TestCloseStopsRun(t *testing.T) {
	t.Parallel()
	m, _ := testMirror(t, Config{})
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background(), newOutbox(nil)) }()
	time.Sleep(20 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run=%v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := m.Run(context.Background(), newOutbox(nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close=%v, want ErrClosed", err)
	}
}

// Ensure records with ids that cannot be stored are dropped, loudly, and
// do not block the others.
func TestInvalidIDSkipped(t *testing.T) {
	t.Parallel()
	m, _ := testMirror(t, Config{})
	recs := genRecords(3, 1, 0)
	recs[1].MsgID = strings.Repeat("Z", 27)
	drain(t, m, newOutbox(recs))
	if got, want := count(t, m.db, "messages"), 2; got != want {
		t.Fatalf("messages=%d, want %d", got, want)
	}
	if got, want := m.Stats().Skipped, uint64(1); got != want {
		t.Fatalf("Skipped=%d, want %d", got, want)
	}
}

func TestPlanChunks(t *testing.T) {
	for _, tc := range []struct {
		name              string
		sizes             []int
		maxRows, maxBytes int
		want              []int
	}{
		{"empty", nil, 10, 100, nil},
		{"one run", []int{10, 10, 10}, 10, 100, []int{3}},
		{"by rows", []int{1, 1, 1, 1, 1}, 2, 100, []int{2, 4, 5}},
		{"by bytes", []int{40, 40, 40, 40}, 10, 100, []int{2, 4}},
		{"exact bytes", []int{50, 50, 50}, 10, 100, []int{2, 3}},
		{"oversized row alone", []int{10, 500, 10}, 10, 100, []int{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planChunks(tc.sizes, tc.maxRows, tc.maxBytes)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("planChunks=%v, want %v", got, tc.want)
			}
		})
	}
}

// Ensure one batch bigger than a statement's placeholder limit and byte
// budget is split into several statements of one transaction.
func TestLargeBatchSplit(t *testing.T) {
	t.Parallel()
	// 6,000 messages x 13 columns = 78,000 placeholders; 64 KiB per statement.
	m, _ := testMirror(t, Config{BatchRows: 6000, BatchBytes: 8 << 20})
	recs := genRecords(6000, 1, 0)
	src := newOutbox(recs)
	m.cfg.BatchBytes = 64 << 10 // statements only: the outbox already served the batch
	batch, _ := src.OutboxBatch(6000, 8<<20)
	if got, want := len(batch), 6000; got != want {
		t.Fatalf("batch of %d, want %d", got, want)
	}
	rows, skipped, err := m.write(context.Background(), batch)
	if err != nil || skipped != 0 || rows != 12000 {
		t.Fatalf("write=%d, %d, %v; want 12000, 0, nil", rows, skipped, err)
	}
	if got, want := count(t, m.db, "messages"), 6000; got != want {
		t.Fatalf("messages=%d, want %d", got, want)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"ascii", "abcdef", 5, "abcde"},
		{"rune boundary", "abcdé", 5, "abcd"},
		{"emoji", "a😀", 4, "a"},
		{"invalid", "a\xffb", 10, "a\uFFFDb"},
		{"invalid run then cut", "\xff\xffab", 4, "\uFFFDa"},
		{"invalid cut mid-rune", "\xffé", 4, "\uFFFD"},
		{"zero", "abc", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clip(tc.in, tc.n); got != tc.want {
				t.Errorf("clip(%q, %d)=%q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}
