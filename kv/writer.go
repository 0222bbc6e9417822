package kv

import (
	"context"
	"fmt"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// An op's life. The writer and the submitting caller race for each transition with
// compare-and-swap, so exactly one of them decides what happened to a write whose
// caller stopped waiting (see submit).
const (
	opPending    int32 = iota // queued, not yet in a transaction
	opCommitting              // in the transaction being committed
	opFinished                // result delivered to a waiting caller
	opAbandoned               // caller left before the writer took it: never written
	opOrphaned                // caller left while it was being committed
)

type op struct {
	apply func(tx *bolt.Tx) error
	// undo, if set, is run in a later transaction when the op was committed after its
	// caller had stopped waiting: the caller reported failure, so the commit must not
	// stand as a success (docs/decisions.md §5).
	undo  func(tx *bolt.Tx) error
	state atomic.Int32
	done  chan error
	// what names an op nobody waits for (an undo), so that its failure is logged.
	what string

	// With a journal (kv/journal_store.go): decide makes the op's change in
	// the appender's view, which turns it into journal records; the op is
	// answered once they are durable. undoDecide is undo's. An op without
	// decide runs in the applier's bbolt transaction after every record
	// appended before it and is answered once that commits; barrier makes the
	// appender wait for it before deciding anything after it (an op that
	// changes messages in a way the view cannot see).
	decide, undoDecide func(v *view) error
	barrier            bool
}

func newOp(apply, undo func(*bolt.Tx) error) *op {
	return &op{apply: apply, undo: undo, done: make(chan error, 1)}
}

// submit hands o to the writer and waits for the commit that covers it, or for ctx.
func (s *Store) submit(ctx context.Context, o *op) error {
	// Checked first: a select with a free slot in ops would pick at random.
	select {
	case <-s.quit:
		return ErrClosed
	default:
	}
	select {
	case s.ops <- o:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("not stored: %w", ctx.Err())
	}
	select {
	case err := <-o.done:
		return err
	case <-s.done:
		// The writer has exited; an op it never took (sent while Close ran) is
		// abandoned here, since nothing else will ever look at it.
		select {
		case err := <-o.done:
			return err
		default:
		}
		if o.state.CompareAndSwap(opPending, opAbandoned) {
			return ErrClosed
		}
		return <-o.done
	case <-ctx.Done():
		if o.state.CompareAndSwap(opPending, opAbandoned) {
			return fmt.Errorf("not stored: %w", ctx.Err())
		}
		if o.state.CompareAndSwap(opCommitting, opOrphaned) {
			return fmt.Errorf("store too slow, write will be undone: %w", ctx.Err())
		}
		// The writer finished it in the meantime and is sending the result.
		return <-o.done
	}
}

// run is the single writer. A commit starts as soon as the previous one ended and
// takes everything queued by then, so callers under load share fsyncs while a lone
// caller pays for exactly one.
func (s *Store) run() {
	defer close(s.done)
	var carry []*op // undo operations for the next transaction
	for {
		batch := carry
		carry = nil
		if len(batch) == 0 {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			case <-s.quit:
				s.drain()
				return
			}
		}
		batch = s.fill(batch)
		carry = s.commit(batch)
	}
}

// drain commits whatever was submitted before Close.
func (s *Store) drain() {
	var carry []*op
	for {
		batch := s.fill(carry)
		if len(batch) == 0 {
			return
		}
		carry = s.commit(batch)
	}
}

// fill adds to batch whatever is queued now, without waiting.
func (s *Store) fill(batch []*op) []*op {
	for len(batch) < s.maxBatch {
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// commit writes batch in one transaction and reports to each caller. If the
// transaction fails, each op is retried alone so that one bad op cannot fail the
// others; a failing disk fails them all. It returns the undo ops to run next.
func (s *Store) commit(batch []*op) (undo []*op) {
	live := batch[:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(opPending, opCommitting) {
			live = append(live, o)
		}
	}
	if len(live) == 0 {
		return nil
	}
	err := s.update(live)
	if err != nil && len(live) > 1 {
		s.log.Warn("group commit failed, retrying one by one", "ops", len(live), "err", err)
		for _, o := range live {
			undo = append(undo, s.finish(o, s.update([]*op{o}))...)
		}
		return undo
	}
	for _, o := range live {
		undo = append(undo, s.finish(o, err)...)
	}
	return undo
}

func (s *Store) update(ops []*op) error {
	s.commits.Add(1)
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range ops {
			if err := o.apply(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) finish(o *op, err error) []*op {
	if o.state.CompareAndSwap(opCommitting, opFinished) {
		if err != nil && o.what != "" {
			s.log.Error("store write failed", "op", o.what, "err", err)
		}
		o.done <- err
		return nil
	}
	// Orphaned: the caller already reported failure.
	if err == nil && o.undo != nil {
		u := newOp(o.undo, nil)
		u.decide = o.undoDecide
		u.what = "undo of a write whose caller gave up"
		return []*op{u}
	}
	return nil
}
