package mirror

import (
	"context"
	"time"

	"github.com/sipsilo/sipsilo/internal/backoff"
)

// Run drains src into the database until ctx ends or Close is called, and
// then returns nil. Each batch is written in one transaction and deleted
// from src only after the commit. On any error Run logs (once per distinct
// error), backs off exponentially with jitter and retries the same batch:
// records are never dropped, and a batch whose commit outcome is unknown
// is simply written again.
func (m *Mirror) Run(ctx context.Context, src Outbox) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.done, cancel)
	defer stop()

	r := runner{m: m, src: src}
	for ctx.Err() == nil {
		wait := r.step(ctx)
		if wait > 0 {
			sleep(ctx, wait)
		}
	}
	return nil
}

// runner is the state of one Run loop.
type runner struct {
	m       *Mirror
	src     Outbox
	batch   []Record // read but not yet deleted from the outbox
	written bool     // batch is committed; only the delete is left
	fails   int      // failed attempts in a row, for the backoff
	failing string   // the last logged error, to log each distinct one once
}

// step moves the current batch one stage on and says how long to wait
// before the next step.
func (r *runner) step(ctx context.Context) time.Duration {
	m := r.m
	if r.batch == nil {
		b, err := r.src.OutboxBatch(m.cfg.BatchRows, m.cfg.BatchBytes)
		if err != nil {
			return r.fail(ctx, "read outbox", err)
		}
		if len(b) == 0 {
			r.ok()
			return m.cfg.Interval
		}
		r.batch, r.written = b, false
	}
	if !r.written {
		rows, skipped, err := m.write(ctx, r.batch)
		if err != nil {
			return r.fail(ctx, "write", err)
		}
		r.written = true
		lag := time.Since(r.batch[0].At)
		m.mu.Lock()
		m.stats.Records += uint64(len(r.batch) - skipped)
		m.stats.Rows += uint64(rows)
		m.stats.Batches++
		m.stats.Skipped += uint64(skipped)
		m.stats.Lag = lag
		m.mu.Unlock()
	}
	if err := r.src.OutboxDelete(ctx, r.batch[len(r.batch)-1].Seq); err != nil {
		return r.fail(ctx, "delete from outbox", err)
	}
	r.batch = nil
	r.ok()
	return 0
}

// fail records err and returns the next backoff delay.
func (r *runner) fail(ctx context.Context, what string, err error) time.Duration {
	if ctx.Err() != nil {
		return 0 // shutting down: not an error worth reporting
	}
	m := r.m
	msg := what + ": " + err.Error()
	m.mu.Lock()
	m.stats.Errors++
	m.stats.LastError = msg
	m.mu.Unlock()
	if msg != r.failing {
		m.log.Warn("mirror: retrying", "err", msg, "pending", len(r.batch))
		r.failing = msg
	}
	r.fails++
	return backoff.Delay(m.cfg.BackoffMin, m.cfg.BackoffMax, r.fails-1)
}

// ok resets the backoff after a success.
func (r *runner) ok() {
	if r.failing != "" {
		r.m.log.Info("mirror: writing again")
		r.failing = ""
		r.m.mu.Lock()
		r.m.stats.LastError = ""
		r.m.mu.Unlock()
	}
	r.fails = 0
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
