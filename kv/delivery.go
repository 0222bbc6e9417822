package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrNotQueued is returned when a delivery step is asked for a message that has
// already left its queue (delivered, released, dead-lettered).
var ErrNotQueued = errors.New("message is not queued")

// ErrMismatch is returned when an ESL event names a message it does not belong to.
var ErrMismatch = errors.New("event does not match the stored message")

// change runs fn on message id inside one write transaction (see changeTx) and
// returns the message as committed. With a journal the change is decided by the
// appender and answered once its record is durable (kv/journal_store.go).
func (s *Store) change(ctx context.Context, what, id string, ev func(m *Message) *event, fn func(m *Message) (bool, error)) (*Message, error) {
	var out *Message
	apply := func(tx *bolt.Tx) error {
		var err error
		out, err = s.changeTx(tx, id, s.now(), ev, fn)
		return err
	}
	o := newOp(apply, nil)
	o.decide = func(v *view) error {
		var err error
		out, err = s.changeIn(v, id, s.now(), ev, fn)
		return err
	}
	if err := s.submit(ctx, o); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, id, err)
	}
	return out, nil
}

// changer is where changeIn reads a message and writes its change: a bbolt
// write transaction (txChanger), or with a journal the appender's view, which
// turns the change into a journal record (kv/journal_view.go).
type changer interface {
	// message returns id's stored record, nil when there is none.
	message(id string) ([]byte, error)
	// changed stores m, whose record is rec and whose state was was before the
	// change, and the outbox record obx (nil: none).
	changed(m *Message, was State, rec, obx []byte) error
}

// changeTx is changeIn in tx.
func (s *Store) changeTx(tx *bolt.Tx, id string, now time.Time, ev func(m *Message) *event, fn func(m *Message) (bool, error)) (*Message, error) {
	return s.changeIn(txChanger{s, tx}, id, now, ev, fn)
}

// changeIn loads message id, lets fn change it and stores it when fn reports a
// change. A message that leaves StateQueued is taken out of its recipient's queue
// in the same transaction, and one that returns to it is put back in its place.
// ev, if set, names the outbox record of the change (see outboxRecord).
func (s *Store) changeIn(st changer, id string, now time.Time, ev func(m *Message) *event, fn func(m *Message) (bool, error)) (*Message, error) {
	v, err := st.message(id)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	m, err := decodeMessage(v)
	if err != nil {
		return nil, fmt.Errorf("%q: %w: %v", id, ErrCorrupt, err)
	}
	was := m.State
	changed, err := fn(m)
	if err != nil || !changed {
		return m, err
	}
	m.Updated = now
	var obx []byte
	if ev != nil {
		if e := ev(m); e != nil { // nil: a change not worth a record
			m.addDeviceHistory(now, e.kind, e.detail, e.device)
			if obx, err = s.outboxRecord(m, e, now); err != nil {
				return nil, err
			}
		}
	}
	nv, err := reencodeMessage(m, v)
	if err != nil {
		return nil, err
	}
	return m, st.changed(m, was, nv, obx)
}

// txChanger is a changer on a bbolt write transaction.
type txChanger struct {
	s  *Store
	tx *bolt.Tx
}

func (c txChanger) message(id string) ([]byte, error) {
	return c.tx.Bucket(bucketMessages).Get([]byte(id)), nil
}

func (c txChanger) changed(m *Message, was State, rec, obx []byte) error {
	if (was == StateQueued) != (m.State == StateQueued) {
		if err := c.s.moveQueueEntry(c.tx, m); err != nil {
			return err
		}
	}
	if obx != nil {
		if err := putOutbox(c.tx, obx); err != nil {
			return err
		}
	}
	return c.tx.Bucket(bucketMessages).Put([]byte(m.ID), rec)
}

// moveQueueEntry puts m's queue entry when m is queued, else deletes it.
func (s *Store) moveQueueEntry(tx *bolt.Tx, m *Message) error {
	qk, err := queueKey(m.To, m.Order, m.ID)
	if err != nil {
		return err
	}
	q := tx.Bucket(bucketQueue)
	if m.State == StateQueued {
		err = q.Put(qk, queueValue)
	} else {
		err = q.Delete(qk)
	}
	if err != nil {
		return err
	}
	return s.queueMoved(tx, m.To, m.State)
}

// record returns an ev for change that names a fixed kind.
func record(kind string, detail func(m *Message) string, withBody bool) func(m *Message) *event {
	return func(m *Message) *event {
		d := ""
		if detail != nil {
			d = detail(m)
		}
		return &event{kind: kind, detail: d, withBody: withBody}
	}
}

func reasonOf(m *Message) string     { return m.Reason }
func lastResultOf(m *Message) string { return m.LastResult }

// ConfirmBody replaces the stored body with the exact copy from the ESL MESSAGE
// event that FreeSWITCH fires after the chatplan (docs/decisions.md §4).
// It is recorded even for a message that is no longer queued, so its history holds
// the exact text; a message given up as StateNoBody is queued again. For a body
// already exact at intake (BodyQueryExact) the event is a cross-check, whose
// outcome check reports; when the copies differ the ESL one is kept.
//
// The event keeps the chatplan request's Core-UUID and Event-Sequence (docs/decisions.md
// §4); an event whose pair differs from the stored one is not this
// message's and is refused with ErrMismatch.
func (s *Store) ConfirmBody(ctx context.Context, id, core string, seq uint64, body []byte) (*Message, BodyCheck, error) {
	// check belongs to the writer's goroutine until the commit is reported: the
	// writer may still run the change after the caller gave up (ctx), so nothing
	// on the caller's side writes it, not even a return through a named result.
	var check BodyCheck
	detail := func(*Message) string {
		if check == BodyDiffered {
			return "exact body from ESL differs from the query copy checked at intake; the ESL copy is kept"
		}
		return "exact body from ESL"
	}
	m, err := s.change(ctx, "confirm body", id, record(EventBody, detail, true), func(m *Message) (bool, error) {
		if m.CoreUUID != core || m.EventSeq != seq {
			return false, fmt.Errorf("%w: event %s/%d, message %s/%d", ErrMismatch, core, seq, m.CoreUUID, m.EventSeq)
		}
		if m.BodySource == BodyESL {
			return false, nil // a duplicate event
		}
		if m.State == StateNoBody {
			// Given up for want of a body, which has come after all: deliver it.
			m.State, m.Reason = StateQueued, "exact body arrived after the grace period"
		}
		if m.BodySource == BodyQueryExact {
			check = BodySame
			if !bytes.Equal(m.Body, body) {
				check = BodyDiffered
			}
		}
		m.Body = append([]byte(nil), body...)
		m.BodySource, m.BodyFinal, m.BodyFallback = BodyESL, true, false
		return true, nil
	})
	if err != nil {
		return nil, BodyUnchecked, err
	}
	return m, check, nil
}

// BodyCheck is what the ESL copy of a body said of the copy checked at intake.
type BodyCheck int

const (
	BodyUnchecked BodyCheck = iota // the body was not exact at intake (or the event was a duplicate)
	BodySame                       // the ESL copy is the body checked at intake
	BodyDiffered                   // the ESL copy differs; it replaced the intake copy
)

// FinalizeBody ends the wait for the exact body: the query copy stands and the
// record says so, or, without a query copy, the message is recorded as having no
// body (StateNoBody) instead of waiting forever.
func (s *Store) FinalizeBody(ctx context.Context, id string) (*Message, error) {
	return s.change(ctx, "finalize body", id, func(m *Message) *event {
		if m.State == StateNoBody {
			return &event{kind: EventNoBody, detail: m.Reason}
		}
		return &event{kind: EventBody, detail: m.Reason}
	}, func(m *Message) (bool, error) {
		if m.BodyFinal || m.State != StateQueued {
			return false, nil
		}
		if m.BodySource == BodyQueryExact {
			m.BodyFinal, m.BodyFallback = true, true
			m.Reason = "no ESL MESSAGE event in time; the body checked at intake stands"
			return true, nil
		}
		if m.BodySource == BodyAwaiting {
			m.State, m.Reason = StateNoBody, "no body in the chatplan request and no ESL MESSAGE event"
			return true, nil
		}
		m.BodyFinal, m.BodyFallback = true, true
		m.Reason = "exact body not received over ESL in time; the query copy is used"
		return true, nil
	})
}

// intakeInFlight marks a message that may already have been delivered by
// FreeSWITCH itself: see MarkIntakeUncertain.
const intakeInFlight = "intake"

// MarkIntakeUncertain is for a message found awaiting its exact body after a
// restart. The process ended between storing it and reading FreeSWITCH's
// post-chatplan event, so it cannot tell whether FreeSWITCH received the final
// answer: if it did not, it delivered the message itself (docs/decisions.md §5). The message
// is kept (never lose) and marked in flight, so that sending it counts as an
// uncertain resend.
func (s *Store) MarkIntakeUncertain(ctx context.Context, id string) (*Message, error) {
	return s.change(ctx, "mark intake uncertain", id, nil, func(m *Message) (bool, error) {
		if m.State != StateQueued || m.BodyFinal || m.InFlight != "" {
			return false, nil
		}
		m.InFlight = intakeInFlight
		return true, nil
	})
}

// BeginAttempt records, durably and before anything is sent, that attempt is about
// to deliver message id. A message still marked in flight from before a restart
// counts an uncertain resend: its earlier send may have reached the device.
//
// A message past its expiry is not begun but expired in the same transaction, and
// ErrExpired is returned: whatever relay read earlier, nothing expired is sent.
func (s *Store) BeginAttempt(ctx context.Context, id, attempt string, at time.Time) (*Message, error) {
	m, err := s.change(ctx, "begin attempt", id, expiredEvent, func(m *Message) (bool, error) {
		if m.State != StateQueued {
			return false, ErrNotQueued
		}
		if m.due(at) {
			m.State, m.Reason = StateExpired, expiredReason(m)
			m.endCopies(StateExpired)
			return true, nil
		}
		if m.InFlight != "" {
			m.UncertainResends++
		}
		m.Attempts++
		m.InFlight, m.LastAttempt = attempt, at
		return true, nil
	})
	if err == nil && m.State == StateExpired {
		return m, fmt.Errorf("begin attempt %s: %w", id, ErrExpired)
	}
	return m, err
}

// AttemptResult is how a failed attempt ended.
type AttemptResult struct {
	Text    string // FreeSWITCH's answer or the error
	Refused bool   // a live recipient refused it: counts towards the dead letter
	// MayArrive: the send timed out or its result was lost, and FreeSWITCH may still
	// deliver it (it retransmits until Timer F), so the message stays marked in
	// flight and its next send counts as an uncertain resend.
	MayArrive bool
}

// EndAttempt records a failed attempt's result.
func (s *Store) EndAttempt(ctx context.Context, id, attempt string, r AttemptResult) (*Message, error) {
	return s.change(ctx, "end attempt", id, record(EventAttempt, lastResultOf, false), func(m *Message) (bool, error) {
		if m.State != StateQueued {
			return false, nil
		}
		if m.InFlight == attempt && !r.MayArrive {
			m.InFlight = ""
		}
		m.LastResult = r.Text
		if r.Refused {
			m.Refusals++
		}
		return true, nil
	})
}

// Delivered records that the recipient's device answered 2xx to attempt and takes
// the message out of its queue. Between that answer and this commit lies the one
// tolerated duplicate window (docs/decisions.md §1): one group commit.
func (s *Store) Delivered(ctx context.Context, id, attempt, result string) error {
	_, err := s.change(ctx, "delivered", id, record(EventDelivered, lastResultOf, false), func(m *Message) (bool, error) {
		reason := "device answered 2xx to attempt " + attempt
		switch {
		case m.State == StateQueued:
		case lateResult(m, attempt):
			// Expired or purged while this send was in flight: the device has it,
			// and the record says so rather than claim it was never delivered.
			reason += " after the message was " + string(m.State)
		default:
			return false, nil
		}
		m.State, m.Reason = StateDelivered, reason
		m.InFlight, m.LastResult, m.Delivered = "", result, s.now()
		return true, nil
	})
	return err
}

// DeadLetter takes a message its recipient keeps refusing out of the queue; it
// stays stored, visible as StateDead.
func (s *Store) DeadLetter(ctx context.Context, id, reason string) error {
	_, err := s.change(ctx, "dead letter", id, record(EventDead, reasonOf, false), func(m *Message) (bool, error) {
		if m.State != StateQueued {
			return false, nil
		}
		m.State, m.Reason, m.InFlight = StateDead, reason, ""
		return true, nil
	})
	return err
}

// Ping commits a write that allocates through the writer, as intake does: it
// fails when the writer is stopped or the file cannot take a message's worth of
// new pages and sync them (the /readyz check). An empty transaction rewrites only
// a meta page, which succeeds on a full disk.
func (s *Store) Ping(ctx context.Context) error {
	if s.j != nil {
		// The journal too: a record appended, in a new segment when the
		// current one is full, as intake's would be.
		o := newOp(func(*bolt.Tx) error { return nil }, nil)
		o.decide = func(v *view) error {
			v.opRecs = append(v.opRecs, []byte{recNoop})
			return nil
		}
		if err := s.submit(ctx, o); err != nil {
			return err
		}
	}
	return s.submit(ctx, newOp(func(tx *bolt.Tx) error {
		// Rewritten each time: the old copy's pages are freed, new ones allocated.
		return tx.Bucket(bucketMeta).Put(keyReady, make([]byte, s.db.Info().PageSize))
	}, nil))
}
