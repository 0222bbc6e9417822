package kv

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// The read side shared by `sipsilo inspect` (on a stopped daemon's file, opened
// read-only) and the admin API (on the daemon's own store), so both show the same
// numbers. Each call is one read transaction, a consistent snapshot, but Summary,
// which reads in bounded chunks.

// Summary is what the store holds: `sipsilo inspect stats` and GET /api/v1/stats.
type Summary struct {
	At       time.Time     `json:"at"` // when it was taken; the ages are relative to it
	Messages int           `json:"messages"`
	ByState  map[State]int `json:"by_state"`
	// QueueEntries counts the queue bucket: the messages sipsilo still has to deliver.
	QueueEntries int `json:"queue_entries"`
	// Recipients lists every recipient with a queued message, deepest first.
	Recipients      []RecipientQueue `json:"recipients"`
	OldestQueued    time.Time        `json:"oldest_queued,omitzero"`
	OldestQueuedAge float64          `json:"oldest_queued_age_s"`
	// OutboxRecords are the state changes not yet copied to MySQL (the mirror's backlog).
	OutboxRecords   int   `json:"outbox_records"`
	PresenceRecords int   `json:"presence_records"`
	FileBytes       int64 `json:"file_bytes"`
}

// RecipientQueue is one recipient's queue in a Summary.
type RecipientQueue struct {
	AOR       string    `json:"aor"`
	Queued    int       `json:"queued"`
	Oldest    time.Time `json:"oldest_queued"`
	OldestAge float64   `json:"oldest_age_s"`
}

// knownStates are reported in Summary.ByState even at zero, so a script need not
// tell a missing key from none; states this build does not name are counted as found.
var knownStates = []State{StateQueued, StateReleased, StateDelivered, StateDead, StateNoBody, StateExpired, StatePurged}

// summaryChunk bounds the keys one read transaction of Summary visits: a long
// read transaction would hold the writer off growing the file (bbolt remaps
// under its lock), and a summary of a million messages is many of them.
var summaryChunk = 65536

// Summary counts the store's contents. It reads every message record, but only the
// state out of each (see peekState), and the queue from its keys alone, so it stays
// cheap enough for the admin API on a live store. It reads summaryChunk keys per
// read transaction (docs/decisions.md §35): on a live store each figure is exact
// for the moment its part was read, and a message that changes meanwhile is
// counted once.
func (s *Store) Summary() (Summary, error) {
	now := s.now()
	sum := Summary{At: now.UTC(), ByState: make(map[State]int, len(knownStates))}
	for _, st := range knownStates {
		sum.ByState[st] = 0
	}
	err := s.chunked(bucketMessages, func(k, v []byte) error {
		st, err := peekState(v)
		if err != nil {
			return fmt.Errorf("message %q: %w: %v", k, ErrCorrupt, err)
		}
		sum.Messages++
		sum.ByState[st]++
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	if err := s.summariseQueue(now, &sum); err != nil {
		return Summary{}, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketOutbox); b != nil {
			sum.OutboxRecords, _ = outboxSpan(tx) // its keys are contiguous: no walk
		}
		if b := tx.Bucket(bucketReach); b != nil {
			sum.PresenceRecords = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	if fi, err := os.Stat(s.path); err == nil {
		sum.FileBytes = fi.Size()
	}
	return sum, nil
}

// chunked calls fn for every key of bucket in order, summaryChunk keys per read
// transaction, each continuing after the last key the previous one read.
func (s *Store) chunked(bucket []byte, fn func(k, v []byte) error) error {
	return s.chunkedTx(bucket, nil, fn)
}

// chunkedTx is chunked calling begin (if set) at the start of each read
// transaction.
func (s *Store) chunkedTx(bucket []byte, begin func(tx *bolt.Tx), fn func(k, v []byte) error) error {
	var last []byte // the last key read; nil before the first
	for {
		done := true
		err := s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			if b == nil {
				return fmt.Errorf("%w: bucket %s missing", ErrCorrupt, bucket)
			}
			if begin != nil {
				begin(tx)
			}
			c := b.Cursor()
			k, v := c.First()
			if last != nil {
				if k, v = c.Seek(last); k != nil && bytes.Equal(k, last) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil; k, v = c.Next() {
				if n == summaryChunk {
					done = false
					return nil
				}
				n++
				if err := fn(k, v); err != nil {
					return err
				}
				last = append(last[:0], k...)
			}
			return nil
		})
		if err != nil || done {
			return err
		}
	}
}

// summariseQueue walks the queue keys in order. A recipient's entries are one
// contiguous key range, so one pass counts each in turn.
func (s *Store) summariseQueue(now time.Time, sum *Summary) error {
	cur := -1 // the recipient being counted, in sum.Recipients
	var msgs *bolt.Bucket
	err := s.chunkedTx(bucketQueue, func(tx *bolt.Tx) { msgs = tx.Bucket(bucketMessages) }, func(k, _ []byte) error {
		aor, _, id, err := parseQueueKey(k)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		at, err := receivedOf(msgs, []byte(id))
		if err != nil {
			return err
		}
		if cur < 0 || sum.Recipients[cur].AOR != aor {
			sum.Recipients = append(sum.Recipients, RecipientQueue{AOR: aor, Oldest: at})
			cur = len(sum.Recipients) - 1
		}
		r := &sum.Recipients[cur]
		r.Queued++
		sum.QueueEntries++
		if at.Before(r.Oldest) {
			r.Oldest = at
		}
		if sum.OldestQueued.IsZero() || at.Before(sum.OldestQueued) {
			sum.OldestQueued = at
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range sum.Recipients {
		r := &sum.Recipients[i]
		r.OldestAge = ageSeconds(now, r.Oldest)
	}
	if !sum.OldestQueued.IsZero() {
		sum.OldestQueuedAge = ageSeconds(now, sum.OldestQueued)
	}
	slices.SortStableFunc(sum.Recipients, func(a, b RecipientQueue) int {
		if c := cmp.Compare(b.Queued, a.Queued); c != 0 {
			return c
		}
		if c := a.Oldest.Compare(b.Oldest); c != 0 {
			return c
		}
		return cmp.Compare(a.AOR, b.AOR)
	})
	if sum.Recipients == nil {
		sum.Recipients = []RecipientQueue{}
	}
	return nil
}

// receivedOf is when the queued message id was received. Ids are ULIDs made from
// the receive time (idSource), so the key holds it to the millisecond and no record
// needs decoding; an id that is not one falls back to the record.
func receivedOf(msgs *bolt.Bucket, id []byte) (time.Time, error) {
	if u, err := ulid.ParseStrict(string(id)); err == nil {
		return ulid.Time(u.Time()).UTC(), nil
	}
	v := msgs.Get(id)
	if v == nil {
		return time.Time{}, fmt.Errorf("queued message %q: %w: record missing", id, ErrCorrupt)
	}
	m, err := decodeMessage(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("message %q: %w: %v", id, ErrCorrupt, err)
	}
	return m.Received.UTC(), nil
}

func ageSeconds(now, t time.Time) float64 {
	return float64(now.Sub(t).Milliseconds()) / 1000
}

// recordStart and stateKey are how every JSON record (written before the
// compact record, kv/record.go) begins:
// json.Marshal keeps the field order of Message, whose first two fields are the id
// (a ULID, never escaped) and the state.
var (
	recordStart = []byte(`{"id":"`)
	stateKey    = []byte(`","state":"`)
)

// peekState reads a record's state without decoding the rest, so that counting a
// million messages does not parse a million bodies; a record of another shape is
// decoded in full.
func peekState(v []byte) (State, error) {
	if st, ok := peekRecordState(v); ok {
		return st, nil
	}
	if rest, ok := bytes.CutPrefix(v, recordStart); ok {
		if i := bytes.IndexByte(rest, '"'); i >= 0 {
			if rest, ok = bytes.CutPrefix(rest[i:], stateKey); ok {
				if j := bytes.IndexByte(rest, '"'); j >= 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
					return State(rest[:j]), nil
				}
			}
		}
	}
	m, err := decodeMessage(v)
	if err != nil {
		return "", err
	}
	return m.State, nil
}
