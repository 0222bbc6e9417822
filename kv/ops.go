package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Enqueue stores m as a new queued message and returns its id once the transaction
// holding it is on disk. It fills in ID, State, Order and Updated. When ctx ends first
// the message is either not written or, if the commit was already under way, released
// right after it, so a caller that saw an error never has its message delivered.
//
// Everything but the writes themselves (id, queue position, encoding) happens here, in
// the caller's goroutine, to keep the single writer's transactions short.
func (s *Store) Enqueue(ctx context.Context, m *Message) (string, error) {
	if m.To == "" {
		return "", errors.New("enqueue: message has no recipient")
	}
	if len(m.CoreUUID) > maxCoreLen {
		return "", fmt.Errorf("enqueue: %w", errCoreTooLong)
	}
	if m.Received.IsZero() {
		m.Received = s.now()
	}
	if m.Devices != nil {
		if err := normalizeCopies(m); err != nil {
			return "", fmt.Errorf("enqueue: %w", err)
		}
	}
	if s.quota > 0 && s.depth.committed(m.To) >= s.quota {
		s.refused.Add(1) // refused early, without taking the writer's time
		return "", fmt.Errorf("enqueue: %w (quota %d)", ErrQuota, s.quota)
	}
	m.ID = s.ids.next(m.Received)
	m.State = StateQueued
	m.Expires = s.expiry(m.Received, m.Expires)
	m.Updated = m.Received
	m.Order = s.order.key(m.CoreUUID, m.EventSeq, m.Received)
	m.History = nil
	m.addHistory(m.Received, EventReceived, "")
	id := []byte(m.ID)
	qk, err := queueKey(m.To, m.Order, m.ID)
	if err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	var obx []byte // the outbox record, also encoded here
	if s.outbox {
		m.Events = 1
		obx, err = json.Marshal(OutboxRecord{MsgID: m.ID, EventSeq: 1, Kind: EventReceived, At: m.Received, Message: m})
		if err != nil {
			return "", fmt.Errorf("enqueue: %w", err)
		}
	}
	rec, err := encodeMessage(m)
	if err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	core, epoch := []byte(m.CoreUUID), u64(uint64(m.Order.Epoch))
	overQuota := false // set by apply, on the writer's goroutine
	apply := func(tx *bolt.Tx) error {
		// Decided here, in the single writer's transaction, so that concurrent
		// intakes cannot both take the last slot. Refusing is not an error: an
		// error would fail the whole group commit. Decided afresh each time: a
		// failed group commit runs apply again, alone, in a new transaction.
		overQuota = false
		if s.quota > 0 && s.depth.get(tx, m.To) >= s.quota {
			overQuota = true
			return nil
		}
		msgs := tx.Bucket(bucketMessages)
		if msgs.Get(id) != nil {
			return fmt.Errorf("enqueue %s: id already taken", id)
		}
		// Append-only by key (ULIDs grow), so full pages rather than bbolt's default
		// half-full splits: fewer pages to write per commit. The queue is appended to
		// per recipient only (queueFill).
		msgs.FillPercent = 1.0
		if err := msgs.Put(id, rec); err != nil {
			return err
		}
		queue := tx.Bucket(bucketQueue)
		queue.FillPercent = queueFill
		if err := queue.Put(qk, queueValue); err != nil {
			return err
		}
		if err := s.queueMoved(tx, m.To, StateQueued); err != nil {
			return err
		}
		if obx != nil {
			b := tx.Bucket(bucketOutbox)
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			b.FillPercent = 1.0
			if err := b.Put(u64(seq), obx); err != nil {
				return err
			}
		}
		if len(core) == 0 {
			return nil
		}
		// Persist the Core-UUID's first-seen time with its first stored message, so
		// that the order survives a restart.
		cores := tx.Bucket(bucketCores)
		if cores.Get(core) != nil {
			return nil
		}
		return cores.Put(core, epoch)
	}
	undo := func(tx *bolt.Tx) error {
		if overQuota {
			return nil // nothing was written
		}
		return s.setState(tx, m.ID, StateReleased, "chatplan answer deadline passed during commit", s.now())
	}
	if err := s.submit(ctx, newOp(apply, undo)); err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	if overQuota {
		s.refused.Add(1)
		return "", fmt.Errorf("enqueue: %w (quota %d)", ErrQuota, s.quota)
	}
	return m.ID, nil
}

// Release marks a queued message as delivered by FreeSWITCH itself: sipsilo stored it
// but could not tell FreeSWITCH so in time (docs/decisions.md §5).
func (s *Store) Release(ctx context.Context, id, reason string) error {
	now := s.now()
	o := newOp(func(tx *bolt.Tx) error { return s.setState(tx, id, StateReleased, reason, now) }, nil)
	if err := s.submit(ctx, o); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	return nil
}

// setState moves a queued message to a final state and takes it out of its queue.
// Messages already out of the queue keep their state: a state change is one-way.
func (s *Store) setState(tx *bolt.Tx, id string, st State, reason string, now time.Time) error {
	_, err := s.changeTx(tx, id, now, record(string(st), reasonOf, false), func(m *Message) (bool, error) {
		if m.State != StateQueued {
			return false, nil
		}
		m.State, m.Reason = st, reason
		return true, nil
	})
	return err
}
