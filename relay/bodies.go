package relay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// BodyStore is what the body tracker needs of kv.Store.
type BodyStore interface {
	ConfirmBody(ctx context.Context, id, core string, seq uint64, body []byte) (*kv.Message, kv.BodyCheck, error)
	FinalizeBody(ctx context.Context, id string) (*kv.Message, error)
	AwaitingBody() ([]*kv.Message, error)
	MarkIntakeUncertain(ctx context.Context, id string) (*kv.Message, error)
}

var _ BodyStore = (*kv.Store)(nil)

// BodyStats counts how message bodies became final.
type BodyStats struct {
	Exact    int64 // from the ESL MESSAGE event
	Query    int64 // grace passed: the dynamic-URL query copy was used
	Missing  int64 // no query copy and no ESL event: recorded as no_body
	Unknown  int64 // ESL bodies for ids this store does not hold, or not matching them
	Failures int64 // store errors
	// Bodies exact at intake (their MD5 matched) and what their ESL copy said:
	Checked     int64 // the same body
	Differed    int64 // another body, which replaced it (never seen; a defect if counted)
	Unconfirmed int64 // none within the grace period: the intake copy stands (a later copy counts as Checked too)
}

// Bodies waits for the post-chatplan MESSAGE event of each new message, which
// FreeSWITCH fires with the exact body, keyed by sipsilo_id. The URL copy of the
// body is lossy with an older binding's body parameter (literal %XX, outer
// spaces), and with the shipped text/md5 pair only when its MD5 could not be
// matched (dialplan.DecodeText); otherwise it is exact and the event is a
// cross-check. The wait also keeps a burst in order: FreeSWITCH's two chat
// threads hand messages over out of order, and the event comes after the
// chatplan. A message becomes deliverable when that event arrived or, after the
// grace period, with the URL copy (docs/decisions.md §4).
type Bodies struct {
	store BodyStore
	wake  func(aor string)
	grace time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	pending map[string]pendingBody

	exact, query, missing, unknown, failures atomic.Int64
	checked, differed, unconfirmed           atomic.Int64
}

type pendingBody struct {
	aor      string
	deadline time.Time
}

// NewBodies returns a tracker; wake is called with the recipient of each message
// whose body became final. grace <= 0 means 2 s.
func NewBodies(store BodyStore, wake func(aor string), grace time.Duration, log *slog.Logger, now func() time.Time) *Bodies {
	if grace <= 0 {
		grace = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Bodies{store: store, wake: wake, grace: grace, log: log.With("component", "bodies"),
		now: now, pending: make(map[string]pendingBody)}
}

// Expect starts the grace period of a message just stored.
func (b *Bodies) Expect(id, aor string, received time.Time) {
	b.mu.Lock()
	b.pending[id] = pendingBody{aor: aor, deadline: received.Add(b.grace)}
	b.mu.Unlock()
}

// Confirm stores the exact body from the post-chatplan MESSAGE event, which
// carries the Core-UUID and Event-Sequence of the chatplan request.
func (b *Bodies) Confirm(ctx context.Context, id, core string, seq uint64, body []byte) {
	m, check, err := b.store.ConfirmBody(ctx, id, core, seq, body)
	if err == nil || errors.Is(err, kv.ErrNotFound) || errors.Is(err, kv.ErrMismatch) {
		b.mu.Lock()
		delete(b.pending, id) // on a store error the grace period still runs
		b.mu.Unlock()
	}
	switch {
	case errors.Is(err, kv.ErrMismatch):
		b.unknown.Add(1)
		b.log.Warn("ESL body ignored: its Core-UUID/Event-Sequence are not the message's", "id", id, "err", err)
	case errors.Is(err, kv.ErrNotFound):
		// Another sipsilo's message, or one stored by a run whose file is gone.
		b.unknown.Add(1)
		b.log.Warn("exact body for an unknown message", "id", id)
	case err != nil:
		b.failures.Add(1)
		b.log.Error("cannot store the exact body; the query copy stays", "id", id, "err", err)
	default:
		switch check {
		case kv.BodySame:
			b.checked.Add(1)
		case kv.BodyDiffered:
			b.differed.Add(1)
			b.log.Error("the ESL body differs from the body checked at intake; the ESL copy is kept", "id", id)
		default:
			b.exact.Add(1)
		}
		if m.State == kv.StateQueued {
			b.wake(m.To)
		}
	}
}

// Run closes expired grace periods until ctx ends. It first takes over the
// messages still awaiting their body in the store: the last run ended between
// storing them and reading their post-chatplan event, so their grace starts again
// and they are marked as possibly delivered by FreeSWITCH already (a crash before
// FreeSWITCH read the final answer makes it deliver the message itself).
func (b *Bodies) Run(ctx context.Context) error {
	msgs, err := b.store.AwaitingBody()
	if err != nil {
		b.log.Error("cannot list messages awaiting their body", "err", err)
	}
	for _, m := range msgs {
		if _, err := b.store.MarkIntakeUncertain(ctx, m.ID); err != nil {
			b.failures.Add(1)
			b.log.Error("cannot mark a message of the last run as uncertain", "id", m.ID, "err", err)
		}
		b.Expect(m.ID, m.To, b.now())
	}
	if len(msgs) > 0 {
		b.log.Warn("messages of the last run awaited their exact body; FreeSWITCH may have delivered them",
			"count", len(msgs))
	}
	tick := time.NewTicker(max(b.grace/10, 20*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			b.expire(ctx)
		}
	}
}

func (b *Bodies) expire(ctx context.Context) {
	now := b.now()
	var due []string
	b.mu.Lock()
	for id, p := range b.pending {
		if !now.Before(p.deadline) {
			due = append(due, id)
		}
	}
	b.mu.Unlock()
	for _, id := range due {
		m, err := b.store.FinalizeBody(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down: the grace restarts on the next run
			}
			b.failures.Add(1)
			b.log.Error("cannot close the wait for a body", "id", id, "err", err)
			continue
		}
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		switch {
		case m.State == kv.StateNoBody:
			b.missing.Add(1)
			b.log.Warn("message has no body: none in the chatplan request, no ESL MESSAGE event", "id", id)
		case m.BodyFallback && m.BodySource == kv.BodyQueryExact:
			b.unconfirmed.Add(1)
			b.log.Info("no ESL MESSAGE event; using the body checked at intake", "id", id)
			b.wake(m.To)
		case m.BodyFallback && m.BodySource == kv.BodyQuery:
			b.query.Add(1)
			b.log.Info("exact body not received over ESL; using the query copy", "id", id)
			b.wake(m.To)
		}
	}
}

// Stats returns the counters.
func (b *Bodies) Stats() BodyStats {
	return BodyStats{Exact: b.exact.Load(), Query: b.query.Load(), Missing: b.missing.Load(),
		Unknown: b.unknown.Load(), Failures: b.failures.Load(),
		Checked: b.checked.Load(), Differed: b.differed.Load(), Unconfirmed: b.unconfirmed.Load()}
}
