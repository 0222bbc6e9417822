package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// ErrBadCursor is returned for an after-cursor that does not name a position in
// the list it is given for.
var ErrBadCursor = errors.New("bad cursor")

// Page is one page of a list: Next is the cursor of the following page (pass it as
// after), empty on the last one.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// pager collects up to limit items (all when limit <= 0) and notices whether one
// more exists, so that Next is empty exactly on the last page.
type pager[T any] struct {
	limit int
	page  Page[T]
	last  string
}

// add takes an item with its cursor and reports whether to go on.
func (p *pager[T]) add(item T, cursor string) bool {
	if p.limit > 0 && len(p.page.Items) == p.limit {
		p.page.Next = p.last
		return false
	}
	p.page.Items = append(p.page.Items, item)
	p.last = cursor
	return true
}

func newPager[T any](limit int) *pager[T] {
	return &pager[T]{limit: limit, page: Page[T]{Items: []T{}}}
}

// QueuePage lists aor's queued messages in delivery order, after the message whose
// id is after (empty: from the start). The cursor is a message id, so a page stays
// valid when the message it ends with is delivered meanwhile.
func (s *Store) QueuePage(aor, after string, limit int) (Page[*Message], error) {
	p := newPager[*Message](limit)
	prefix := queuePrefix(aor)
	err := s.db.View(func(tx *bolt.Tx) error {
		msgs, queue := tx.Bucket(bucketMessages), tx.Bucket(bucketQueue)
		if msgs == nil || queue == nil {
			return fmt.Errorf("%w: buckets missing", ErrCorrupt)
		}
		start := prefix
		if after != "" {
			v := msgs.Get([]byte(after))
			if v == nil {
				return fmt.Errorf("%w: no message %q", ErrBadCursor, after)
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", after, ErrCorrupt, err)
			}
			if m.To != aor {
				return fmt.Errorf("%w: message %q is not to this recipient", ErrBadCursor, after)
			}
			if start, err = queueKey(aor, m.Order, m.ID); err != nil {
				return err
			}
		}
		c := queue.Cursor()
		k, _ := c.Seek(start)
		if after != "" && bytes.Equal(k, start) {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := queueKeyID(k)
			v := msgs.Get(id)
			if v == nil {
				return fmt.Errorf("queue entry %q: %w: message %q missing", k, ErrCorrupt, id)
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", id, ErrCorrupt, err)
			}
			if !p.add(m, m.ID) {
				break
			}
		}
		return nil
	})
	return p.page, err
}

// maxFilterScan bounds the records one filtered page reads (one read
// transaction): with a few dead letters among a million queued, a page would
// otherwise read every record to fill itself.
const maxFilterScan = 65536

// MessagePage lists the stored messages in id (arrival) order after the id after,
// only those in state st (empty: every state). Dead letters are st = StateDead.
// A page with a limit reads at most maxFilterScan records of other states: it
// may then hold fewer than limit items, and its Next continues the scan.
func (s *Store) MessagePage(st State, after string, limit int) (Page[*Message], error) {
	p := newPager[*Message](limit)
	if after != "" {
		if _, err := ulid.ParseStrict(after); err != nil {
			return p.page, fmt.Errorf("%w: %q is not a message id", ErrBadCursor, after)
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketMessages)
		if msgs == nil {
			return fmt.Errorf("%w: buckets missing", ErrCorrupt)
		}
		c := msgs.Cursor()
		k, v := seekAfter(c, after)
		skipped := 0
		for ; k != nil; k, v = c.Next() {
			if st != "" {
				got, err := peekState(v)
				if err != nil {
					return fmt.Errorf("message %q: %w: %v", k, ErrCorrupt, err)
				}
				if got != st {
					if skipped++; limit > 0 && skipped == s.filterScan {
						if more, _ := c.Next(); more != nil {
							p.page.Next = string(k) // the next page resumes after k
						}
						break
					}
					continue
				}
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", k, ErrCorrupt, err)
			}
			if !p.add(m, m.ID) {
				break
			}
		}
		return nil
	})
	return p.page, err
}

// OutboxPage lists the outbox, oldest first, after the record numbered after
// (decimal; empty: from the oldest).
func (s *Store) OutboxPage(after string, limit int) (Page[OutboxRecord], error) {
	p := newPager[OutboxRecord](limit)
	var from uint64
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			return p.page, fmt.Errorf("%w: outbox cursor %q is not a record number", ErrBadCursor, after)
		}
		from = n + 1
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return fmt.Errorf("%w: buckets missing", ErrCorrupt)
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
			var r OutboxRecord
			if err := json.Unmarshal(v, &r); err != nil || r.Message == nil || len(k) != 8 {
				return fmt.Errorf("outbox record %x: %w: %v", k, ErrCorrupt, err)
			}
			r.Seq = be64(k)
			if !p.add(r, strconv.FormatUint(r.Seq, 10)) {
				break
			}
		}
		return nil
	})
	return p.page, err
}

// ReachRecord is one AOR's persisted presence record; presence owns its encoding
// (presence.DecodeRecord reads it).
type ReachRecord struct {
	AOR    string
	Record []byte
}

// ReachPage lists the persisted presence records in AOR order after the AOR after.
func (s *Store) ReachPage(after string, limit int) (Page[ReachRecord], error) {
	p := newPager[ReachRecord](limit)
	if after != "" && !strings.Contains(after, "@") {
		return p.page, fmt.Errorf("%w: %q is not an address", ErrBadCursor, after)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReach)
		if b == nil {
			return fmt.Errorf("%w: buckets missing", ErrCorrupt)
		}
		c := b.Cursor()
		k, v := seekAfter(c, after)
		for ; k != nil; k, v = c.Next() {
			// Values live only as long as the transaction: copy them out.
			r := ReachRecord{AOR: string(k), Record: append([]byte(nil), v...)}
			if !p.add(r, r.AOR) {
				break
			}
		}
		return nil
	})
	return p.page, err
}

// ErrNoReach is returned by GetReach for an AOR with no persisted record.
var ErrNoReach = errors.New("no presence record")

// GetReach returns aor's persisted presence record.
func (s *Store) GetReach(aor string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReach)
		if b == nil {
			return fmt.Errorf("%w: buckets missing", ErrCorrupt)
		}
		v := b.Get([]byte(aor))
		if v == nil {
			return fmt.Errorf("%q: %w", aor, ErrNoReach)
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Verify checks that the file is a sipsilo database of this schema with every
// bucket: a read-only Open of a bbolt file of another program succeeds, and
// inspection must say so rather than show empty lists.
func (s *Store) Verify() error {
	return s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || meta.Get(keySchema) == nil {
			return fmt.Errorf("%s: %w: no sipsilo schema version", s.path, ErrCorrupt)
		}
		old := string(meta.Get(keySchema)) != strconv.Itoa(SchemaVersion) // migrated on its first read-write open
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil && !(old && bytes.Equal(name, bucketDepths)) {
				return fmt.Errorf("%s: %w: bucket %q missing", s.path, ErrCorrupt, name)
			}
		}
		return nil
	})
}

// seekAfter positions c on the first key after the key after ("" : the first
// key), for lists paged by their last key.
func seekAfter(c *bolt.Cursor, after string) (k, v []byte) {
	if after == "" {
		return c.First()
	}
	k, v = c.Seek([]byte(after))
	if bytes.Equal(k, []byte(after)) {
		k, v = c.Next()
	}
	return k, v
}
