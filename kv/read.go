package kv

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Get returns the message with the given id.
func (s *Store) Get(id string) (*Message, error) {
	var m *Message
	err := s.viewOwn(func(tx *bolt.Tx, ov *overlay) error {
		v, _ := ov.record(tx.Bucket(bucketMessages), []byte(id))
		if v == nil {
			return fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		var err error
		m, err = decodeMessage(v)
		return err
	})
	return m, err
}

// Queue returns up to limit of aor's queued messages in delivery order (limit <= 0:
// all of them).
func (s *Store) Queue(aor string, limit int) ([]*Message, error) {
	return s.QueueScan(aor, limit, nil, func(*Message) (bool, bool) { return true, false })
}

// QueueScan reads aor's queue in delivery order and returns the messages pick
// takes, at most limit (<= 0: no limit); pick's stop ends the scan after the
// message it was given. A message whose id skip (if set) reports is passed over
// without being decoded. relay's lanes read their share of a queue with it: the
// recipient's lane the messages without copies, a device's lane its copies up
// to the next message without (docs/decisions.md §29). The scan is bounded by
// the queue, which the quota bounds.
func (s *Store) QueueScan(aor string, limit int, skip func(id []byte) bool, pick func(m *Message) (take, stop bool)) ([]*Message, error) {
	var out []*Message
	err := s.viewOwn(func(tx *bolt.Tx, ov *overlay) error {
		msgs := tx.Bucket(bucketMessages)
		prefix := queuePrefix(aor)
		fresh := ov.freshOf(aor)
		c := tx.Bucket(bucketQueue).Cursor()
		// A queue entry's key ends with its message's id (its value is empty
		// since schema 3, the id before).
		k, _ := c.Seek(prefix)
		for {
			if k != nil && !bytes.HasPrefix(k, prefix) {
				k = nil
			}
			if k == nil && len(fresh) == 0 {
				return nil
			}
			// bbolt's queue and the messages that entered it in records not
			// applied yet, merged by queue key.
			var qk, qid []byte
			switch {
			case k != nil && len(fresh) > 0 && bytes.Equal(k, fresh[0].qk):
				qk, qid = k, queueKeyID(k)
				fresh = fresh[1:]
				k, _ = c.Next()
			case k != nil && (len(fresh) == 0 || bytes.Compare(k, fresh[0].qk) < 0):
				qk, qid = k, queueKeyID(k)
				k, _ = c.Next()
			default:
				qk, qid = fresh[0].qk, []byte(fresh[0].id)
				fresh = fresh[1:]
			}
			if skip != nil && skip(qid) {
				continue
			}
			v, gone := ov.record(msgs, qid)
			if gone {
				continue
			}
			if v == nil {
				return fmt.Errorf("queue entry %q: %w: message %q missing", qk, ErrCorrupt, qid)
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", qid, ErrCorrupt, err)
			}
			take, stop := pick(m)
			if take {
				out = append(out, m)
			}
			if stop || limit > 0 && len(out) >= limit {
				return nil
			}
		}
	})
	return out, err
}

// viewOwn runs fn in a read transaction together with, under a journal, the
// overlay of the records not yet applied (nil without one). Get, All, Queue
// and QueueScan read through it, so that a caller answered for a write (a new
// message, a delivery, an attempt) reads it at once: the relay reads its own
// writes (docs/decisions.md §34). The overlay's lock is taken first: the
// appender forgets what bbolt holds only under it.
func (s *Store) viewOwn(fn func(tx *bolt.Tx, ov *overlay) error) error {
	if s.ov == nil {
		return s.db.View(func(tx *bolt.Tx) error { return fn(tx, nil) })
	}
	s.ov.mu.RLock()
	defer s.ov.mu.RUnlock()
	return s.db.View(func(tx *bolt.Tx) error { return fn(tx, s.ov) })
}

// record returns message id's record as viewOwn sees it; gone reports a
// message whose newer record has left the queue.
func (ov *overlay) record(msgs *bolt.Bucket, id []byte) (v []byte, gone bool) {
	if ov != nil {
		if e, ok := ov.msgs[string(id)]; ok {
			st, err := peekState(e.rec)
			return e.rec, err == nil && st != StateQueued
		}
	}
	return msgs.Get(id), false
}

// msg returns message id's newest record when the overlay has one.
func (ov *overlay) msg(id []byte) (ovMsg, bool) {
	if ov == nil {
		return ovMsg{}, false
	}
	e, ok := ov.msgs[string(id)]
	return e, ok
}

// freshOf returns the messages that entered aor's queue in records not
// applied yet, by queue key.
func (ov *overlay) freshOf(aor string) []freshEntry {
	if ov == nil || len(ov.fresh[aor]) == 0 {
		return nil
	}
	out := make([]freshEntry, 0, len(ov.fresh[aor]))
	for id, f := range ov.fresh[aor] {
		out = append(out, freshEntry{aor: aor, id: id, qk: f.qk})
	}
	slices.SortFunc(out, func(a, b freshEntry) int { return bytes.Compare(a.qk, b.qk) })
	return out
}

// Stats counts what the store holds.
type Stats struct {
	Messages int           `json:"messages"`
	ByState  map[State]int `json:"by_state"`
	Queued   int           `json:"queue_entries"`
	Bytes    int64         `json:"file_bytes"`
}

// Stats walks the messages and the queue. It reads every record, so it is for
// inspection, not for a hot path.
func (s *Store) Stats() (Stats, error) {
	st := Stats{ByState: map[State]int{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		st.Bytes = tx.Size()
		st.Queued = tx.Bucket(bucketQueue).Stats().KeyN
		return tx.Bucket(bucketMessages).ForEach(func(k, v []byte) error {
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", k, ErrCorrupt, err)
			}
			st.Messages++
			st.ByState[m.State]++
			return nil
		})
	})
	return st, err
}

// QueuedAORs returns every recipient with at least one queued message, in key
// order. It skips from one recipient's key range to the next, so its cost grows with
// the number of recipients, not of messages, and reads recipientsPerView of
// them per read transaction, so that very many recipients never hold one read
// transaction long (docs/decisions.md §35).
func (s *Store) QueuedAORs() ([]string, error) {
	var out []string
	var from []byte // where the next read transaction starts; nil: the first key
	for {
		done := true
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketQueue).Cursor()
			k, _ := c.First()
			if from != nil {
				k, _ = c.Seek(from)
			}
			for n := 0; k != nil; n++ {
				aor, _, _, err := parseQueueKey(k)
				if err != nil {
					return fmt.Errorf("%w: %v", ErrCorrupt, err)
				}
				// The smallest key after every key of this recipient: its prefix with
				// the order part all 0xff is above them all, and Seek lands after.
				next := append(queuePrefix(aor), bytes.Repeat([]byte{0xff}, 17)...)
				out = append(out, aor)
				if n+1 == recipientsPerView {
					from, done = next, false
					return nil
				}
				k, _ = c.Seek(next)
			}
			return nil
		})
		if err != nil || done {
			return out, err
		}
	}
}

// Awaiting names a queued message whose exact body has not arrived.
type Awaiting struct {
	ID, To   string
	Received time.Time
}

// awaitingScan bounds the records one AwaitingBodyPage reads, in one read
// transaction: a long read transaction would hold the writer off growing the
// file (bbolt remaps under its lock), and the page stays small in memory.
const awaitingScan = 4096

// AwaitingBodyPage returns up to limit queued messages whose post-chatplan ESL
// event has not arrived and whose grace period was not yet closed, in id
// (arrival) order from the message after the id from (nil: the first), and the
// key to continue from (nil once the scan reached the end). One call reads at
// most max(limit, 4096) records, so a restart on a million queued messages takes
// them over in bounded batches (docs/decisions.md §35). It walks the messages
// bucket with one cursor, not the queue with a look-up per entry: at a million
// queued the look-ups were most of an idle daemon's CPU for the minute after a
// restart.
func (s *Store) AwaitingBodyPage(from []byte, limit int) ([]Awaiting, []byte, error) {
	if limit <= 0 {
		limit = awaitingScan
	}
	var out []Awaiting
	var next []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMessages).Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
			if k != nil && bytes.Equal(k, from) {
				k, v = c.Next()
			}
		}
		var last []byte
		for n := 0; k != nil; k, v = c.Next() {
			if n >= max(limit, awaitingScan) || len(out) >= limit {
				// Continue after the last key read; if it is gone by then, Seek
				// lands on the next one, which is not skipped.
				next = bytes.Clone(last)
				return nil
			}
			n++
			last = k
			if st, ok := peekRecordState(v); ok && st != StateQueued {
				continue // finished: no need to decode it
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", k, ErrCorrupt, err)
			}
			if !m.BodyFinal && m.State == StateQueued {
				out = append(out, Awaiting{ID: m.ID, To: m.To, Received: m.Received})
			}
		}
		return nil
	})
	return out, next, err
}

// AwaitingBody returns every queued message whose post-chatplan ESL event has
// not arrived and whose grace period was not yet closed, in one read. It is for
// tests and inspection; the daemon pages with AwaitingBodyPage.
func (s *Store) AwaitingBody() ([]*Message, error) {
	var out []*Message
	err := s.db.View(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketMessages)
		return tx.Bucket(bucketQueue).ForEach(func(k, _ []byte) error {
			id := queueKeyID(k)
			m, err := decodeMessage(msgs.Get(id))
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", id, ErrCorrupt, err)
			}
			if !m.BodyFinal {
				out = append(out, m)
			}
			return nil
		})
	})
	return out, err
}

// All returns every stored message in id (arrival) order, for inspection and tests.
// Under a journal each message is in its newest state, and the messages only
// the journal holds yet are included (see viewOwn).
func (s *Store) All() ([]*Message, error) {
	var out []*Message
	err := s.viewOwn(func(tx *bolt.Tx, ov *overlay) error {
		err := tx.Bucket(bucketMessages).ForEach(func(k, v []byte) error {
			if e, ok := ov.msg(k); ok {
				v = e.rec
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", k, ErrCorrupt, err)
			}
			out = append(out, m)
			return nil
		})
		if err != nil || ov == nil {
			return err
		}
		msgs := tx.Bucket(bucketMessages)
		n := len(out)
		for id, e := range ov.msgs {
			if msgs.Get([]byte(id)) != nil {
				continue
			}
			m, err := decodeMessage(e.rec)
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", id, ErrCorrupt, err)
			}
			out = append(out, m)
		}
		if len(out) > n {
			slices.SortFunc(out, func(a, b *Message) int { return strings.Compare(a.ID, b.ID) })
		}
		return nil
	})
	return out, err
}
