package mirror

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// maxPlaceholders is the server's limit for a prepared statement. With
// InterpolateParams the statement goes as text, but the driver silently
// falls back to a prepared one when the text gets too big.
const maxPlaceholders = 65535

// messageColumns and the upsert below must stay in the same order.
var messageColumns = []string{"id", "sender", "recipient", "from_full", "content_type", "body",
	"received", "delivered", "state", "attempts", "last_result", "updated", "last_event_seq"}

// messageUpsert only overwrites a row with a snapshot at least as new as
// the stored one, so a replay of older records never moves a message
// backwards; equal replays rewrite equal values. Assignments run left to
// right and see earlier ones, so last_event_seq must be assigned last. The
// body is kept unless the record carries one.
var messageUpsert = func() string {
	var b strings.Builder
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	for _, c := range messageColumns[1:] {
		switch c {
		case "body":
			b.WriteString("body = COALESCE(VALUES(body), body), ")
		case "last_event_seq":
			b.WriteString("last_event_seq = GREATEST(last_event_seq, VALUES(last_event_seq))")
		default:
			fmt.Fprintf(&b, "%[1]s = IF(VALUES(last_event_seq) >= last_event_seq, VALUES(%[1]s), %[1]s), ", c)
		}
	}
	return b.String()
}()

var eventColumns = []string{"message_id", "seq", "kind", "device", "state", "at", "detail"}

// A replayed event is identical to the stored one: keep the stored one.
const eventUpsert = " ON DUPLICATE KEY UPDATE seq = seq"

// snapshot is the newest state of one message within a batch.
type snapshot struct {
	rec     *Record // the record with the highest Seq
	body    []byte  // the newest body carried by any record, or nil
	bodySeq uint64
}

// write stores batch in one transaction. It returns the number of rows
// sent and the records skipped because they can never be stored.
func (m *Mirror) write(ctx context.Context, batch []Record) (rows, skipped int, err error) {
	var order []string
	snaps := make(map[string]*snapshot, len(batch))
	events := make([]*Record, 0, len(batch))
	for i := range batch {
		r := &batch[i]
		if !validID(r.MsgID) {
			m.log.Error("mirror: skipping a record with an invalid message id",
				"seq", r.Seq, "id", r.MsgID, "kind", r.Kind)
			skipped++
			continue
		}
		events = append(events, r)
		s := snaps[r.MsgID]
		if s == nil {
			s = &snapshot{rec: r}
			snaps[r.MsgID] = s
			order = append(order, r.MsgID)
		} else if r.Seq >= s.rec.Seq {
			s.rec = r
		}
		if r.Body != nil && (s.body == nil || r.Seq >= s.bodySeq) {
			s.body, s.bodySeq = r.Body, r.Seq
		}
	}
	if len(events) == 0 {
		return 0, skipped, nil
	}

	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, skipped, err
	}
	defer tx.Rollback() // a no-op after Commit

	msgs := make([]*snapshot, len(order))
	for i, id := range order {
		msgs[i] = snaps[id]
	}
	err = m.insertChunks(ctx, tx, "messages", messageColumns, messageUpsert, len(msgs),
		func(i int) ([]any, int) { return messageArgs(msgs[i]) })
	if err != nil {
		return 0, skipped, fmt.Errorf("upsert messages: %w", err)
	}
	err = m.insertChunks(ctx, tx, "message_events", eventColumns, eventUpsert, len(events),
		func(i int) ([]any, int) { return eventArgs(events[i]) })
	if err != nil {
		return 0, skipped, fmt.Errorf("insert events: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, skipped, fmt.Errorf("commit: %w", err)
	}
	return len(msgs) + len(events), skipped, nil
}

// insertChunks sends n rows as multi-row INSERTs of at most BatchRows
// rows, about BatchBytes bytes and maxPlaceholders arguments each. row
// returns one row's arguments and its approximate size.
func (m *Mirror) insertChunks(ctx context.Context, tx *sql.Tx, table string, cols []string,
	suffix string, n int, row func(int) ([]any, int)) error {
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES "
	tuple := "(" + strings.Repeat("?, ", len(cols)-1) + "?)"
	rowArgs := make([][]any, n)
	sizes := make([]int, n)
	for i := range n {
		rowArgs[i], sizes[i] = row(i)
	}
	maxRows := min(m.cfg.BatchRows, maxPlaceholders/len(cols))
	var q strings.Builder
	args := make([]any, 0, min(n, maxRows)*len(cols))
	start := 0
	for _, end := range planChunks(sizes, maxRows, m.cfg.BatchBytes) {
		q.Reset()
		q.WriteString(head)
		args = args[:0]
		for i := start; i < end; i++ {
			if i > start {
				q.WriteString(", ")
			}
			q.WriteString(tuple)
			args = append(args, rowArgs[i]...)
		}
		q.WriteString(suffix)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// planChunks splits rows of the given sizes into runs of at most maxRows
// rows and at most maxBytes bytes, except that a run always holds at least
// one row. It returns the end index of each run.
func planChunks(sizes []int, maxRows, maxBytes int) []int {
	var ends []int
	rows, size := 0, 0
	for i, sz := range sizes {
		if rows > 0 && (rows == maxRows || size+sz > maxBytes) {
			ends = append(ends, i)
			rows, size = 0, 0
		}
		rows++
		size += sz
	}
	if rows > 0 {
		ends = append(ends, len(sizes))
	}
	return ends
}

func messageArgs(s *snapshot) ([]any, int) {
	r := s.rec
	var body any
	if s.body != nil {
		b := s.body
		if len(b) > maxBody {
			b = b[:maxBody]
		}
		body = b
	}
	var delivered any
	if !r.Delivered.IsZero() {
		delivered = dbTime(r.Delivered)
	}
	received := r.Received
	if received.IsZero() {
		received = r.At
	}
	args := []any{
		r.MsgID,
		clip(r.From, addrLen),
		clip(r.To, addrLen),
		clip(r.FromFull, fromFullLen),
		clip(r.ContentType, contentTypeLen),
		body,
		dbTime(received),
		delivered,
		clip(r.State, stateLen),
		r.Attempts,
		clip(r.LastResult, resultLen),
		dbTime(r.At),
		r.EventSeq,
	}
	// Escaping can double the text; the rest is a rough per-row overhead.
	size := 2*(len(s.body)+len(r.From)+len(r.To)+len(r.FromFull)+len(r.ContentType)+len(r.LastResult)) + 200
	return args, size
}

func eventArgs(r *Record) ([]any, int) {
	args := []any{
		r.MsgID,
		r.EventSeq,
		clip(r.Kind, kindLen),
		clip(r.Device, deviceLen),
		clip(r.State, stateLen),
		dbTime(r.At),
		clip(r.Detail, detailLen),
	}
	return args, 2*(len(r.Detail)+len(r.Device)) + 120
}

// dbTime is t as DATETIME(6) stores it: UTC, whole microseconds. Cutting
// here rather than on the server keeps replays byte-identical whatever the
// server's rounding.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// clip makes s valid UTF-8 (invalid bytes become U+FFFD, which a utf8mb4
// column accepts) and cuts it to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// validID reports whether id fits the CHAR(26) ASCII key.
func validID(id string) bool {
	if id == "" || len(id) > idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}
