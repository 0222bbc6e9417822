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
	if s.quota > 0 && s.depthNow(m.To) >= s.quota {
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
	qk, err := queueKey(m.To, m.Order, m.ID)
	if err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	if s.outbox {
		m.Events = 1
	}
	// The journal's record is the kind byte and the message's record, which
	// bbolt stores: encoded once, into one buffer.
	p := encodeNewMessage(m)
	rec := p[1:]
	obx, err := s.receivedRecord(m) // the outbox record, also encoded here
	if err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	w := &enqueueWrite{m: m, rec: rec, obx: obx, qk: qk}
	apply := func(tx *bolt.Tx) error { return s.enqueueTx(tx, w, false) }
	undo := func(tx *bolt.Tx) error {
		if w.overQuota {
			return nil // nothing was written
		}
		return s.setState(tx, m.ID, StateReleased, undoReason, s.now())
	}
	o := newOp(apply, undo)
	o.decide = func(v *view) error {
		// Decided by the appender against what bbolt holds and the records it
		// has not applied yet: the same answer the transaction would give.
		w.overQuota = false
		if s.quota > 0 && v.depth(m.To) >= s.quota {
			w.overQuota = true
			return nil
		}
		taken, err := v.taken(m.ID)
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("enqueue %s: id already taken", m.ID)
		}
		v.enqueued(m, p, qk)
		return nil
	}
	o.undoDecide = func(v *view) error {
		if w.overQuota {
			return nil
		}
		_, err := s.setStateIn(v, m.ID, StateReleased, undoReason, s.now())
		return err
	}
	if err := s.submit(ctx, o); err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	if w.overQuota {
		s.refused.Add(1)
		return "", fmt.Errorf("enqueue: %w (quota %d)", ErrQuota, s.quota)
	}
	return m.ID, nil
}

const undoReason = "chatplan answer deadline passed during commit"

// enqueueWrite is what Enqueue's transaction writes, prepared by the caller.
type enqueueWrite struct {
	m        *Message
	rec, obx []byte
	qk       []byte
	// overQuota is set by enqueueTx, on the writer's goroutine.
	overQuota bool
}

// receivedRecord encodes m's outbox record of its arrival, when the outbox is on.
func (s *Store) receivedRecord(m *Message) ([]byte, error) {
	if !s.outbox {
		return nil, nil
	}
	return json.Marshal(OutboxRecord{MsgID: m.ID, EventSeq: 1, Kind: EventReceived, At: m.Received, Message: m})
}

// enqueueTx writes a new message in tx. replay is true for a journal
// record's replay: the quota admitted the message when it was appended, and
// the caller found its id free.
func (s *Store) enqueueTx(tx *bolt.Tx, w *enqueueWrite, replay bool) error {
	m := w.m
	w.overQuota = false // a group commit that failed may run it again
	// Decided here, in the single writer's transaction, so that concurrent
	// intakes cannot both take the last slot. Refusing is not an error: an
	// error would fail the whole group commit.
	if !replay && s.quota > 0 && s.depth.get(tx, m.To) >= s.quota {
		w.overQuota = true
		return nil
	}
	id := []byte(m.ID)
	msgs := tx.Bucket(bucketMessages)
	if !replay && msgs.Get(id) != nil {
		return fmt.Errorf("enqueue %s: id already taken", id)
	}
	// Append-only by key (ULIDs and per-recipient order keys grow), so full pages
	// rather than bbolt's default half-full splits: fewer pages to write per commit.
	msgs.FillPercent = 1.0
	if err := msgs.Put(id, w.rec); err != nil {
		return err
	}
	// The queue is appended to per recipient only (queueFill).
	queue := tx.Bucket(bucketQueue)
	queue.FillPercent = queueFill
	if err := queue.Put(w.qk, queueValue); err != nil {
		return err
	}
	if err := s.queueMoved(tx, m.To, StateQueued); err != nil {
		return err
	}
	if w.obx != nil {
		b := tx.Bucket(bucketOutbox)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		b.FillPercent = 1.0
		if err := b.Put(u64(seq), w.obx); err != nil {
			return err
		}
	}
	// (Replay at Open runs before the order keys are loaded: s.order is nil.)
	if m.CoreUUID == "" || s.order != nil && s.order.isStored(m.CoreUUID) {
		return nil
	}
	// Persist the Core-UUID's first-seen time with its first stored message, so
	// that the order survives a restart.
	cores := tx.Bucket(bucketCores)
	if s.order != nil {
		defer s.order.storedOnCommit(tx, m.CoreUUID)
	}
	if cores.Get([]byte(m.CoreUUID)) != nil {
		return nil
	}
	return cores.Put([]byte(m.CoreUUID), u64(uint64(m.Order.Epoch)))
}

// Release marks a queued message as delivered by FreeSWITCH itself: sipsilo stored it
// but could not tell FreeSWITCH so in time (docs/decisions.md §5).
func (s *Store) Release(ctx context.Context, id, reason string) error {
	now := s.now()
	o := newOp(func(tx *bolt.Tx) error { return s.setState(tx, id, StateReleased, reason, now) }, nil)
	o.decide = func(v *view) error {
		_, err := s.setStateIn(v, id, StateReleased, reason, now)
		return err
	}
	if err := s.submit(ctx, o); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	return nil
}

// setState moves a queued message to a final state and takes it out of its queue.
// Messages already out of the queue keep their state: a state change is one-way.
func (s *Store) setState(tx *bolt.Tx, id string, st State, reason string, now time.Time) error {
	_, err := s.setStateIn(txChanger{s, tx}, id, st, reason, now)
	return err
}

// setStateIn is setState in st; it reports whether the message changed.
func (s *Store) setStateIn(st changer, id string, to State, reason string, now time.Time) (bool, error) {
	changed := false
	_, err := s.changeIn(st, id, now, record(string(to), reasonOf, false), func(m *Message) (bool, error) {
		if m.State != StateQueued {
			return false, nil
		}
		m.State, m.Reason, changed = to, reason, true
		return true, nil
	})
	return changed, err
}
