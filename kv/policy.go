package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// Kinds of records for the delivery policy's state changes.
const (
	EventExpired  = "expired"
	EventPurged   = "purged"
	EventRequeued = "requeued" // a dead letter given another chance (admin retry)
	EventNotice   = "notice"   // a notice to the sender; Detail names its kind
)

// Kinds of sender notices, as recorded in Message.Notices.
const (
	NoticeStored  = "stored"
	NoticeExpired = "expired"
)

// ErrExpired is returned by BeginAttempt for a message whose expiry has passed:
// it was expired instead of sent. It is an ErrNotQueued.
var ErrExpired = fmt.Errorf("%w: expired undelivered", ErrNotQueued)

// expiry returns when a message received at received expires: after the store's
// TTL, or at asked when the sender asked for less.
func (s *Store) expiry(received, asked time.Time) time.Time {
	if s.ttl <= 0 {
		return asked
	}
	limit := received.Add(s.ttl)
	if asked.IsZero() || asked.After(limit) {
		return limit
	}
	return asked
}

// TTL is the store's message lifetime (0: messages never expire).
func (s *Store) TTL() time.Duration { return s.ttl }

// due reports whether m's expiry has passed at now.
func (m *Message) due(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

func expiredReason(m *Message) string {
	return "undelivered at its expiry " + m.Expires.UTC().Format(time.RFC3339)
}

// expiredEvent records a change to StateExpired and nothing else.
func expiredEvent(m *Message) *event {
	if m.State != StateExpired {
		return nil
	}
	return &event{kind: EventExpired, detail: m.Reason}
}

// lateResult reports whether a 2xx for attempt belongs to the send that was in
// flight when m was expired or purged. Expiring and purging keep InFlight so that
// such a result still lands.
func lateResult(m *Message, attempt string) bool {
	return (m.State == StateExpired || m.State == StatePurged) && m.InFlight == attempt
}

// ExpireDue expires the queued messages whose expiry has passed at now, calling
// each (if set) with every message it expired, in commits of up to expireBatch,
// and returns how many it expired. A message with a send begun less than
// pending ago is left alone: its result may still come (a bgapi chat waits up
// to ≈20 s, and FreeSWITCH retransmits until Timer F), and relay checks the
// expiry again before any new send.
//
// Candidates are found from the queue's entries alone, s.scanChunk per read
// transaction (a long read transaction would stall the writer when the file
// grows): a message id is a ULID of its intake time, and with the store's TTL
// that bounds its expiry from above, so only messages at least TTL old are
// decoded. A message whose own expiry is earlier (a shorter lifetime asked by
// its sender, or a --ttl since lengthened) is still never sent after it:
// BeginAttempt expires it at its next attempt.
func (s *Store) ExpireDue(ctx context.Context, now time.Time, pending time.Duration, each func(*Message)) (int, error) {
	if s.ttl <= 0 {
		return 0, nil
	}
	bound := uint64(now.Add(-s.ttl).UnixMilli())
	var from []byte
	n := 0
	for {
		ids, next, err := s.dueChunk(now, pending, bound, from)
		if err != nil {
			return n, fmt.Errorf("expire: %w", err)
		}
		for len(ids) > 0 {
			batch := ids[:min(len(ids), expireBatch)]
			ids = ids[len(batch):]
			got, err := s.expireIDs(ctx, batch, now, pending)
			if err != nil {
				return n, fmt.Errorf("expire: %w", err)
			}
			n += len(got)
			for _, m := range got {
				if each != nil {
					each(m)
				}
			}
		}
		if next == nil || ctx.Err() != nil {
			return n, ctx.Err()
		}
		from = next
	}
}

const (
	defaultScanChunk = 8192 // queue entries read per read transaction by ExpireDue
	expireBatch      = 256  // messages expired per write transaction
)

// dueChunk reads up to s.scanChunk queue entries from key from (nil: the first)
// and returns the ids of the due messages among them and the key to go on
// from (nil at the end).
func (s *Store) dueChunk(now time.Time, pending time.Duration, bound uint64, from []byte) (ids []string, next []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketMessages)
		c := tx.Bucket(bucketQueue).Cursor()
		k, _ := c.First()
		if from != nil {
			k, _ = c.Seek(from)
		}
		for i := 0; k != nil; k, _ = c.Next() {
			if i == s.scanChunk {
				next = append([]byte(nil), k...)
				return nil
			}
			i++
			v := queueKeyID(k)
			id, err := ulid.Parse(string(v))
			if err != nil || id.Time() > bound {
				continue
			}
			m, err := decodeMessage(msgs.Get(v))
			if err != nil {
				return fmt.Errorf("message %q: %w: %v", v, ErrCorrupt, err)
			}
			if m.due(now) && !sendPending(m, now, pending) {
				ids = append(ids, m.ID)
			}
		}
		return nil
	})
	return ids, next, err
}

// expireIDs expires the given messages in one transaction, each checked again
// (it may have been delivered or sent since it was read), and returns those it
// expired.
func (s *Store) expireIDs(ctx context.Context, ids []string, now time.Time, pending time.Duration) ([]*Message, error) {
	var out []*Message
	run := func(st changer) error {
		out = out[:0]
		for _, id := range ids {
			changed := false
			m, err := s.changeIn(st, id, now, expiredEvent, func(m *Message) (bool, error) {
				if m.State != StateQueued || !m.due(now) || sendPending(m, now, pending) {
					return false, nil
				}
				m.State, m.Reason, changed = StateExpired, expiredReason(m), true
				m.endCopies(StateExpired)
				return true, nil
			})
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if changed {
				out = append(out, m)
			}
		}
		return nil
	}
	o := newOp(func(tx *bolt.Tx) error { return run(txChanger{s, tx}) }, nil)
	o.decide = func(v *view) error { return run(v) }
	if err := s.submit(ctx, o); err != nil {
		return nil, err
	}
	return out, nil
}

// sendPending reports whether m has a send begun within the last pending whose
// result may still come.
func sendPending(m *Message, now time.Time, pending time.Duration) bool {
	return m.InFlight != "" && m.InFlight != intakeInFlight && now.Sub(m.LastAttempt) < pending ||
		copyPending(m, now, pending)
}

// Purge takes queued message id out of its queue for good (StatePurged) and
// returns it. A send already in flight cannot be called back: if the device
// confirms it, the message is recorded as delivered after all (see Delivered);
// the caller can tell from InFlight. A message not queued gives ErrNotQueued.
func (s *Store) Purge(ctx context.Context, id, reason string) (*Message, error) {
	m, err := s.change(ctx, "purge", id, record(EventPurged, reasonOf, false), func(m *Message) (bool, error) {
		if m.State != StateQueued {
			return false, fmt.Errorf("%w (%s)", ErrNotQueued, m.State)
		}
		m.State, m.Reason = StatePurged, reason
		m.endCopies(StatePurged)
		return true, nil
	})
	return m, err
}

// purgeBatch bounds one transaction of PurgeQueue, so that a long queue does not
// hold the writer (and intake) for long.
const purgeBatch = 256

// PurgeQueue purges aor's queued messages, at most max (<= 0: all), in batches
// of purgeBatch per transaction, and returns them in queue order. Messages
// queued meanwhile behind the purged ones may stay.
func (s *Store) PurgeQueue(ctx context.Context, aor, reason string, max int) ([]*Message, error) {
	if len(aor) > maxAORLen {
		return nil, errAORTooLong
	}
	var out []*Message
	for max <= 0 || len(out) < max {
		n := purgeBatch
		if max > 0 {
			n = min(n, max-len(out))
		}
		var batch []*Message
		apply := func(tx *bolt.Tx) error {
			batch = batch[:0]
			prefix := queuePrefix(aor)
			var ids []string
			c := tx.Bucket(bucketQueue).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(ids) < n; k, _ = c.Next() {
				ids = append(ids, string(queueKeyID(k)))
			}
			now := s.now()
			for _, id := range ids {
				m, err := s.changeTx(tx, id, now, record(EventPurged, reasonOf, false), func(m *Message) (bool, error) {
					if m.State != StateQueued {
						return false, nil
					}
					m.State, m.Reason = StatePurged, reason
					m.endCopies(StatePurged)
					return true, nil
				})
				if err != nil {
					return err
				}
				batch = append(batch, m)
			}
			return nil
		}
		o := newOp(apply, nil)
		// It reads the queue, which the appender's view does not hold: it runs
		// in bbolt once everything before it is applied (kv/journal_store.go).
		o.barrier = true
		if err := s.submit(ctx, o); err != nil {
			return out, fmt.Errorf("purge queue: %w", err)
		}
		out = append(out, batch...)
		if len(batch) < n {
			break
		}
	}
	return out, nil
}

// Requeue gives a dead-lettered message another chance: it goes back to its
// place in the queue with its refusals forgotten. Nothing else is requeued: a
// delivered, expired, purged or released message stays where it is
// (ErrNotQueued).
func (s *Store) Requeue(ctx context.Context, id, reason string) (*Message, error) {
	return s.change(ctx, "requeue", id, record(EventRequeued, reasonOf, false), func(m *Message) (bool, error) {
		if m.State != StateDead {
			return false, fmt.Errorf("%w (%s)", ErrNotQueued, m.State)
		}
		if m.due(s.now()) {
			return false, fmt.Errorf("%w: its expiry has passed", ErrNotQueued)
		}
		m.State, m.Reason, m.Refusals = StateQueued, reason, 0
		for i := range m.Devices {
			if c := &m.Devices[i]; c.State == StateDead {
				c.State, c.Refusals = StateQueued, 0
			}
		}
		return true, nil
	})
}

// MarkNotice records that a notice of kind is going to the sender of message id.
// It returns false when one was already recorded: each kind goes at most once
// per message, across restarts too (recorded before it is sent, so a crash in
// between loses the notice rather than repeating it).
func (s *Store) MarkNotice(ctx context.Context, id, kind string) (bool, error) {
	first := false
	_, err := s.change(ctx, "mark notice", id, record(EventNotice, func(*Message) string { return kind }, false), func(m *Message) (bool, error) {
		for _, k := range m.Notices {
			if k == kind {
				return false, nil
			}
		}
		m.Notices = append(m.Notices, kind)
		first = true
		return true, nil
	})
	return first, err
}
