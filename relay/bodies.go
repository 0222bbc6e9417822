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
	AwaitingBodyPage(from []byte, limit int) ([]kv.Awaiting, []byte, error)
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
	// started is when the tracker was made: a message received before it
	// belongs to the last run.
	started time.Time
	// The batch bounds (maxPending, takeoverBatch, maxDue); tests make them small.
	maxPending, takeoverBatch, maxDue int

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
		now: now, started: now(), pending: make(map[string]pendingBody),
		maxPending: maxPending, takeoverBatch: takeoverBatch, maxDue: maxDue}
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

// Bounds on the work of one tick (docs/decisions.md §35): a queue of a million
// messages of the last run, or a burst at intake, is handled in batches, so
// that memory stays bounded and the store's writer is never handed more than a
// batch at once.
const (
	// maxPending caps the messages whose grace runs at once that the takeover
	// adds; intake's own Expect is never refused.
	maxPending = 16384
	// takeoverBatch is the most messages of the last run taken over per tick.
	takeoverBatch = 4096
	// maxDue is the most grace periods closed per tick.
	maxDue = 4096
	// storeWorkers are the store calls of one batch in flight at once: the
	// store commits concurrent calls together, so a batch costs a few commits,
	// not one per message.
	storeWorkers = 64
)

// Run closes expired grace periods until ctx ends. It also takes over, in
// bounded batches, the messages still awaiting their body in the store: the last
// run ended between storing them and reading their post-chatplan event, so their
// grace starts again and they are marked as possibly delivered by FreeSWITCH
// already (a crash before FreeSWITCH read the final answer makes it deliver the
// message itself).
func (b *Bodies) Run(ctx context.Context) error {
	t := &takeover{}
	b.takeOver(ctx, t)
	tick := time.NewTicker(max(b.grace/10, 20*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			b.expire(ctx)
			b.takeOver(ctx, t)
		}
	}
}

// takeover is where the scan for the last run's messages is.
type takeover struct {
	from  []byte
	done  bool
	count int
}

// takeOver takes over one batch of the last run's messages awaiting their body,
// unless enough grace periods run already.
func (b *Bodies) takeOver(ctx context.Context, t *takeover) {
	if t.done || ctx.Err() != nil {
		return
	}
	b.mu.Lock()
	n := len(b.pending)
	b.mu.Unlock()
	if n >= b.maxPending {
		return
	}
	page, next, err := b.store.AwaitingBodyPage(t.from, min(b.takeoverBatch, b.maxPending-n))
	if err != nil {
		b.failures.Add(1)
		b.log.Error("cannot list messages awaiting their body", "err", err)
		return // tried again on the next tick
	}
	var last []kv.Awaiting
	for _, a := range page {
		if a.Received.Before(b.started) {
			last = append(last, a)
		}
	}
	parallel(len(last), func(i int) {
		if ctx.Err() != nil {
			return // shutting down: the next run takes them over
		}
		if _, err := b.store.MarkIntakeUncertain(ctx, last[i].ID); err != nil {
			if ctx.Err() != nil {
				return
			}
			b.failures.Add(1)
			b.log.Error("cannot mark a message of the last run as uncertain", "id", last[i].ID, "err", err)
		}
	})
	if ctx.Err() != nil {
		return // this page is read again by the next run
	}
	now := b.now()
	for _, a := range last {
		b.Expect(a.ID, a.To, now)
	}
	t.count += len(last)
	t.from = next
	if next == nil {
		t.done = true
		if t.count > 0 {
			b.log.Warn("messages of the last run awaited their exact body; FreeSWITCH may have delivered them",
				"count", t.count)
		}
	}
}

// parallel calls f(0) … f(n-1) from at most storeWorkers goroutines and
// returns when every call has.
func parallel(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, storeWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

func (b *Bodies) expire(ctx context.Context) {
	now := b.now()
	var due []string
	b.mu.Lock()
	for id, p := range b.pending {
		if len(due) >= b.maxDue {
			break // the rest on the next tick
		}
		if !now.Before(p.deadline) {
			due = append(due, id)
		}
	}
	b.mu.Unlock()
	parallel(len(due), func(i int) {
		if ctx.Err() != nil {
			return // shutting down: the grace restarts on the next run
		}
		b.finalize(ctx, due[i])
	})
}

func (b *Bodies) finalize(ctx context.Context, id string) {
	m, err := b.store.FinalizeBody(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		b.failures.Add(1)
		b.log.Error("cannot close the wait for a body", "id", id, "err", err)
		return
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

// Stats returns the counters.
func (b *Bodies) Stats() BodyStats {
	return BodyStats{Exact: b.exact.Load(), Query: b.query.Load(), Missing: b.missing.Load(),
		Unknown: b.unknown.Load(), Failures: b.failures.Load(),
		Checked: b.checked.Load(), Differed: b.differed.Load(), Unconfirmed: b.unconfirmed.Load()}
}
