package kv

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// QueueStats is the queues at a glance, for /metrics.
type QueueStats struct {
	// Depth is the number of queued messages.
	Depth int
	// Recipients is the number of recipients with at least one queued message.
	Recipients int
	// Oldest is the intake time of the oldest message at the head of a queue
	// (zero when nothing is queued). A queue is in delivery order, which follows
	// intake closely (docs/decisions.md §2), so its head is its oldest message
	// but for messages reordered by a few milliseconds.
	Oldest time.Time
}

// recipientsPerView bounds the recipients one read transaction visits, so that a
// scrape of a store with very many recipients never holds one read transaction
// long: a long reader would delay the writer when bbolt has to grow its mmap.
var recipientsPerView = 4096

// QueueStats takes the depth from the writer's count and visits the first key
// of each recipient's range, skipping the rest: its cost grows with the number of
// recipients, not with the messages held, and no message is decoded. With many
// recipients the figures come from several read transactions; each is exact for
// its moment.
func (s *Store) QueueStats() (QueueStats, error) {
	st := QueueStats{Depth: s.depth.total()}
	var from, seek []byte
	for {
		done := false
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketQueue).Cursor()
			k, _ := c.First()
			if from != nil {
				k, _ = c.Seek(from)
			}
			for n := 0; k != nil; n++ {
				if n == recipientsPerView {
					from = bytes.Clone(k)
					return nil
				}
				prefix, id, ok := splitQueueKey(k)
				if !ok {
					return fmt.Errorf("%w: queue key %q", ErrCorrupt, k)
				}
				st.Recipients++
				if at, ok := ulidTime(id); ok && (st.Oldest.IsZero() || at.Before(st.Oldest)) {
					st.Oldest = at
				}
				k = nextRecipient(c, prefix, &seek)
			}
			done = true
			return nil
		})
		if err != nil || done {
			return st, err
		}
	}
}

// splitQueueKey returns the recipient prefix of a queue key (length and AOR)
// and the message id at its end.
func splitQueueKey(k []byte) (prefix, id []byte, ok bool) {
	if len(k) < 2 {
		return nil, nil, false
	}
	n := 2 + int(binary.BigEndian.Uint16(k))
	if len(k) < n+16 {
		return nil, nil, false
	}
	return k[:n], k[n+16:], true
}

// nextRecipient moves c to the first key of the recipient after prefix's. A few
// Next calls are cheaper than a Seek from the root when queues are short; a long
// queue is skipped with one Seek to a key above all of its keys (its prefix with
// the order part all 0xff). seek is a reusable buffer.
func nextRecipient(c *bolt.Cursor, prefix []byte, seek *[]byte) []byte {
	p := append((*seek)[:0], prefix...) // prefix points into the page; k moves on
	*seek = p
	for range 8 {
		k, _ := c.Next()
		if k == nil || !bytes.HasPrefix(k, p) {
			return k
		}
	}
	*seek = append(p, bytes.Repeat([]byte{0xff}, 17)...)
	k, _ := c.Seek(*seek)
	return k
}

// ulidTime is the time in a ULID's first ten characters (milliseconds).
func ulidTime(id []byte) (time.Time, bool) {
	var u ulid.ULID
	if len(id) != ulid.EncodedSize || u.UnmarshalText(id) != nil {
		return time.Time{}, false
	}
	return ulid.Time(u.Time()), true
}

// counts are figures kept as the writer's transactions commit, so that /metrics
// reads them without a walk over the store. Every change to the queue bucket goes
// through queueMoved: Enqueue, and changeTx for every state change; the queue's
// depth itself is kept by depths (quota.go).
type counts struct {
	mu       sync.Mutex
	finished map[State]uint64 // messages that left the queue since Open, by the state they took
}

// queueMoved records, once tx commits, one of aor's messages entering
// (to == StateQueued) or leaving its queue.
func (s *Store) queueMoved(tx *bolt.Tx, aor string, to State) error {
	if to == StateQueued {
		return s.depth.add(tx, aor, 1)
	}
	tx.OnCommit(func() {
		s.counts.mu.Lock()
		s.counts.finished[to]++
		s.counts.mu.Unlock()
	})
	return s.depth.add(tx, aor, -1)
}

// Finished counts the messages that left their queue since Open, by the state
// they took (delivered, dead, released, no_body, …).
func (s *Store) Finished() map[State]uint64 {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	return maps.Clone(s.counts.finished)
}

// OutboxStats is the mirror's backlog, for /metrics.
type OutboxStats struct {
	// Records waiting for the mirror.
	Records int
	// Oldest is when the oldest waiting record's change happened (zero when none).
	Oldest time.Time
}

// OutboxStats reads the first and last outbox keys and decodes only the first
// record. Records are appended with the bucket's own sequence, one more each
// (a rolled back transaction rolls the sequence back too), and the mirror deletes
// them oldest first, so the keys held are contiguous and their count is the
// distance between the first and the last: no walk over the backlog, which grows
// without bound while MySQL is down.
func (s *Store) OutboxStats() (OutboxStats, error) {
	var st OutboxStats
	err := s.db.View(func(tx *bolt.Tx) error {
		var first []byte
		if st.Records, first = outboxSpan(tx); first == nil {
			return nil
		}
		var r struct {
			At time.Time `json:"at"`
		}
		if err := json.Unmarshal(first, &r); err != nil {
			return fmt.Errorf("outbox record: %w: %v", ErrCorrupt, err)
		}
		st.Oldest = r.At
		return nil
	})
	return st, err
}

// outboxSpan returns the number of outbox records and the first one (nil when
// there is none).
func outboxSpan(tx *bolt.Tx) (n int, first []byte) {
	c := tx.Bucket(bucketOutbox).Cursor()
	k, v := c.First()
	if k == nil {
		return 0, nil
	}
	last, _ := c.Last()
	return int(be64(last) - be64(k) + 1), v
}
