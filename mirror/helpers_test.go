package mirror

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sipsilo/sipsilo/internal/mariadbtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeOutbox is an in-memory Outbox.
type fakeOutbox struct {
	mu      sync.Mutex
	recs    []Record
	deletes int
	readErr error // returned by OutboxBatch while set
}

var _ Outbox = (*fakeOutbox)(nil)

func newOutbox(recs []Record) *fakeOutbox {
	return &fakeOutbox{recs: append([]Record(nil), recs...)}
}

func (o *fakeOutbox) OutboxBatch(maxRecords, maxBytes int) ([]Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.readErr != nil {
		return nil, o.readErr
	}
	size := 0
	n := 0
	for n < len(o.recs) && n < maxRecords {
		size += len(o.recs[n].Body) + 200
		if n > 0 && size > maxBytes {
			break
		}
		n++
	}
	return append([]Record(nil), o.recs[:n]...), nil
}

func (o *fakeOutbox) OutboxDelete(ctx context.Context, upTo uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.deletes++
	i := 0
	for i < len(o.recs) && o.recs[i].Seq <= upTo {
		i++
	}
	o.recs = o.recs[i:]
	return nil
}

func (o *fakeOutbox) add(recs ...Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recs = append(o.recs, recs...)
}

func (o *fakeOutbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.recs)
}

// testMirror starts a MariaDB and opens a Mirror on it with fast retries.
func testMirror(t testing.TB, cfg Config) (*Mirror, *mariadbtest.Server) {
	t.Helper()
	srv := mariadbtest.Start(t)
	cfg.DSN = quietDSN(srv)
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Millisecond
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = 10 * time.Millisecond
		cfg.BackoffMax = 200 * time.Millisecond
	}
	m, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, srv
}

// quietDSN: the driver logs lost connections, which some tests cause.
func quietDSN(srv *mariadbtest.Server) *mysql.Config {
	cfg := srv.DSNConfig()
	cfg.Logger = &mysql.NopLogger{}
	return cfg
}

// runUntil runs m on src in the background until cond holds (or 60 s
// pass), then stops Run and waits for it.
func runUntil(t testing.TB, m *Mirror, src Outbox, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, src) }()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("mirror did not converge; stats %+v", m.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func drain(t testing.TB, m *Mirror, src *fakeOutbox) {
	t.Helper()
	runUntil(t, m, src, func() bool { return src.len() == 0 })
}

var kinds = []string{"received", "attempt", "attempt", "delivered", "purged"}
var states = []string{"queued", "queued", "queued", "delivered", "delivered"}

func msgID(i int) string { return fmt.Sprintf("01HZ%022d", i) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// genRecords makes perMsg records for each of nMsgs messages, the
// messages interleaved at random (each message's own records in order),
// numbered from seq0+1.
func genRecords(nMsgs, perMsg int, seq0 uint64) []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	next := make([]int, nMsgs) // next event number-1 per message
	open := make([]int, nMsgs)
	for i := range open {
		open[i] = i
	}
	recs := make([]Record, 0, nMsgs*perMsg)
	for len(open) > 0 {
		k := rng.IntN(len(open))
		i := open[k]
		n := next[i]
		next[i]++
		if next[i] == perMsg {
			open[k] = open[len(open)-1]
			open = open[:len(open)-1]
		}
		seq := seq0 + uint64(len(recs)) + 1
		recs = append(recs, makeRecord(i, n, seq))
	}
	return recs
}

// makeRecord is event n (from 0) of message i.
func makeRecord(i, n int, seq uint64) Record {
	received := t0.Add(time.Duration(i) * time.Second)
	r := Record{
		Seq: seq, MsgID: msgID(i), EventSeq: n + 1,
		Kind: kinds[n%len(kinds)], State: states[n%len(states)],
		At:          received.Add(time.Duration(n) * time.Millisecond),
		Detail:      fmt.Sprintf("event %d of %d", n+1, i),
		From:        fmt.Sprintf("user%d@example.com", i%7),
		To:          fmt.Sprintf("user%d@example.com", i%11),
		FromFull:    fmt.Sprintf(`"User %d" <sip:user%d@example.com>;tag=%d`, i%7, i%7, i),
		ContentType: "text/plain",
		Received:    received,
		Attempts:    n,
		LastResult:  fmt.Sprintf("result %d", n),
	}
	if n == 0 {
		r.Body = []byte(fmt.Sprintf("hello %d", i))
	}
	if r.State == "delivered" {
		r.Delivered = received.Add(3 * time.Millisecond)
	}
	return r
}

// dump returns a digest of both tables, every column, in key order.
func dump(t testing.TB, db *sql.DB) string {
	t.Helper()
	h := sha256.New()
	for _, q := range []string{
		"SELECT id, sender, recipient, from_full, content_type, HEX(body), received, delivered, state, attempts, last_result, updated, last_event_seq FROM messages ORDER BY id",
		"SELECT message_id, seq, kind, state, at, detail FROM message_events ORDER BY message_id, seq",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				fmt.Fprintf(h, "%q|", v)
			}
			h.Write([]byte{'\n'})
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}

func count(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
