package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Kinds of outbox records: the state changes of a message the history keeps.
const (
	EventReceived  = "received"
	EventBody      = "body"
	EventNoBody    = "no_body"
	EventAttempt   = "attempt" // a failed delivery attempt and its result
	EventDelivered = "delivered"
	EventReleased  = "released"
	EventDead      = "dead"
)

// event is what a change of a message asks the outbox to record.
type event struct {
	kind, detail string
	withBody     bool   // the record carries the body (received, body)
	device       string // the device whose copy changed (docs/decisions.md §29); empty: the message
}

// OutboxRecord is one state change of a message, with a snapshot of the message
// after it. The body is only in records that set it (received, body); the others
// leave Body nil so that the outbox does not copy a 64 KiB body per attempt.
type OutboxRecord struct {
	Seq      uint64    `json:"-"`
	MsgID    string    `json:"id"`
	EventSeq int       `json:"event_seq"` // the message's own count of records, from 1
	Kind     string    `json:"kind"`
	At       time.Time `json:"at"`
	Detail   string    `json:"detail,omitempty"`
	// Device names the device whose copy the change is about (docs/decisions.md
	// §29); empty for a change of the message as a whole.
	Device  string   `json:"device,omitempty"`
	Message *Message `json:"message"`
}

// outboxRecord encodes ev for m, when the outbox is on (nil when off). m.Events
// counts the message's records, so (id, EventSeq) names one record forever: the
// mirror's replays after a crash land on the same row.
func (s *Store) outboxRecord(m *Message, ev *event, now time.Time) ([]byte, error) {
	if !s.outbox || ev == nil {
		return nil, nil
	}
	m.Events++
	snap := *m
	if !ev.withBody {
		snap.Body = nil
	}
	rec := OutboxRecord{MsgID: m.ID, EventSeq: m.Events, Kind: ev.kind, At: now, Detail: ev.detail, Device: ev.device, Message: &snap}
	return json.Marshal(rec)
}

// putOutbox appends an encoded outbox record in tx.
func putOutbox(tx *bolt.Tx, v []byte) error {
	b := tx.Bucket(bucketOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	b.FillPercent = 1.0 // append-only keys
	return b.Put(u64(seq), v)
}

// OutboxBatch returns the oldest records, at most maxRecords and, past the first,
// at most maxBytes of encoded records.
func (s *Store) OutboxBatch(maxRecords, maxBytes int) ([]OutboxRecord, error) {
	var out []OutboxRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		size := 0
		for k, v := c.First(); k != nil && len(out) < maxRecords; k, v = c.Next() {
			if len(out) > 0 && size+len(v) > maxBytes {
				break
			}
			var r OutboxRecord
			if err := json.Unmarshal(v, &r); err != nil || r.Message == nil {
				return fmt.Errorf("outbox record %d: %w: %v", be64(k), ErrCorrupt, err)
			}
			r.Seq = be64(k)
			size += len(v)
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// OutboxDelete removes every record up to and including seq, once the mirror has
// committed them.
func (s *Store) OutboxDelete(ctx context.Context, upTo uint64) error {
	limit := u64(upTo)
	o := newOp(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, limit) <= 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	if err := s.submit(ctx, o); err != nil {
		return fmt.Errorf("outbox delete: %w", err)
	}
	return nil
}

// OutboxLen counts the records waiting for the mirror, from the first and last
// keys (see OutboxStats): no walk over a backlog that may be millions long.
func (s *Store) OutboxLen() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n, _ = outboxSpan(tx)
		return nil
	})
	return n, err
}
