package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Enqueue stores m as a new queued message and returns its id once the transaction
// holding it is on disk. It fills in ID, State, Order and Updated. When ctx ends first
// the message is either not written or, if the commit was already under way, released
// right after it, so a caller that saw an error never has its message delivered.
func (s *Store) Enqueue(ctx context.Context, m *Message) (string, error) {
	if m.To == "" {
		return "", errors.New("enqueue: message has no recipient")
	}
	if len(m.To) > maxAORLen {
		return "", fmt.Errorf("enqueue: %w", errAORTooLong)
	}
	if m.Received.IsZero() {
		m.Received = s.now()
	}
	m.ID = s.ids.next(m.Received)
	m.State = StateQueued
	m.Updated = m.Received
	id := m.ID
	// The writer works on a copy: a caller that gave up may reuse m at once.
	rec := *m
	apply := func(tx *bolt.Tx) error { return putNew(tx, &rec) }
	undo := func(tx *bolt.Tx) error {
		return setState(tx, id, StateReleased, "chatplan answer deadline passed during commit", s.now())
	}
	if err := s.submit(ctx, newOp(apply, undo)); err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	return id, nil
}

// Release marks a queued message as delivered by FreeSWITCH itself: sipsilo stored it
// but could not tell FreeSWITCH so in time (DESIGN.md, Decisions 5).
func (s *Store) Release(ctx context.Context, id, reason string) error {
	now := s.now()
	o := newOp(func(tx *bolt.Tx) error { return setState(tx, id, StateReleased, reason, now) }, nil)
	if err := s.submit(ctx, o); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	return nil
}

func putNew(tx *bolt.Tx, m *Message) error {
	msgs := tx.Bucket(bucketMessages)
	if msgs.Get([]byte(m.ID)) != nil {
		return fmt.Errorf("enqueue %s: id already taken", m.ID)
	}
	order, err := orderFor(tx, m)
	if err != nil {
		return err
	}
	m.Order = order
	qk, err := queueKey(m.To, order, m.ID)
	if err != nil {
		return err
	}
	v, err := encodeMessage(m)
	if err != nil {
		return err
	}
	if err := msgs.Put([]byte(m.ID), v); err != nil {
		return err
	}
	return tx.Bucket(bucketQueue).Put(qk, []byte(m.ID))
}

// orderFor computes the queue position of m inside the transaction, where the
// first-seen time of a Core-UUID and sipsilo's counter are read and written atomically
// with the message itself.
func orderFor(tx *bolt.Tx, m *Message) (OrderKey, error) {
	if m.CoreUUID == "" {
		seq, err := tx.Bucket(bucketQueue).NextSequence()
		return OrderKey{Epoch: m.Received.UnixNano(), Seq: seq}, err
	}
	cores := tx.Bucket(bucketCores)
	if v := cores.Get([]byte(m.CoreUUID)); len(v) == 8 {
		return OrderKey{Epoch: int64(be64(v)), Seq: m.EventSeq}, nil
	}
	epoch := m.Received.UnixNano()
	if err := cores.Put([]byte(m.CoreUUID), u64(uint64(epoch))); err != nil {
		return OrderKey{}, err
	}
	return OrderKey{Epoch: epoch, Seq: m.EventSeq}, nil
}

// setState moves a queued message to a final state and takes it out of its queue.
// Messages already out of the queue keep their state: a state change is one-way.
func setState(tx *bolt.Tx, id string, st State, reason string, now time.Time) error {
	msgs := tx.Bucket(bucketMessages)
	v := msgs.Get([]byte(id))
	if v == nil {
		return fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	m, err := decodeMessage(v)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", id, ErrCorrupt, err)
	}
	if m.State != StateQueued {
		return nil
	}
	qk, err := queueKey(m.To, m.Order, m.ID)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketQueue).Delete(qk); err != nil {
		return err
	}
	m.State, m.Reason, m.Updated = st, reason, now
	nv, err := encodeMessage(m)
	if err != nil {
		return err
	}
	return msgs.Put([]byte(id), nv)
}
