package kv

import (
	"context"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type bboltTx = bolt.Tx

// blockWriter submits an op that holds the writer inside a transaction until the
// returned function is called.
func blockWriter(t *testing.T, s *Store) (entered chan struct{}, release func()) {
	t.Helper()
	gate := make(chan struct{})
	entered = make(chan struct{})
	o := newOp(func(*bolt.Tx) error {
		close(entered)
		<-gate
		return nil
	}, nil)
	// With a journal the appender decides: it is held there.
	o.decide = func(*view) error {
		close(entered)
		<-gate
		return nil
	}
	go s.submit(context.Background(), o)
	return entered, func() { close(gate) }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCallerGivingUpBeforeCommitStoresNothing(t *testing.T) {
	s := openTest(t, "")
	entered, release := blockWriter(t, s)
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	m := msg("1001@127.0.0.1", "c", 1, "late")
	_, err := s.Enqueue(ctx, m)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline", err)
	}
	release()
	// A later write goes through the writer after the abandoned one was skipped.
	if _, err := s.Enqueue(context.Background(), msg("1001@127.0.0.1", "c", 2, "ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abandoned message was stored: %v", err)
	}
}

func TestCallerGivingUpDuringCommitGetsReleased(t *testing.T) {
	s := openTest(t, "")
	entered1, release1 := blockWriter(t, s)
	<-entered1
	// Queue the enqueue and a second blocker so they share the next transaction,
	// enqueue first: the enqueue is applied, then the blocker holds the commit.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := msg("1001@127.0.0.1", "c", 1, "orphan")
	errc := make(chan error, 1)
	go func() { _, err := s.Enqueue(ctx, m); errc <- err }()
	waitFor(t, "enqueue queued", func() bool { return len(s.ops) == 1 })
	entered2, release2 := blockWriter(t, s)
	waitFor(t, "blocker queued", func() bool { return len(s.ops) == 2 })
	release1()
	<-entered2
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("enqueue succeeded after its caller gave up")
	}
	release2()
	waitFor(t, "orphaned message released", func() bool {
		got, err := s.Get(m.ID)
		return err == nil && got.State == StateReleased
	})
	if q, _ := s.Queue("1001@127.0.0.1", 0); len(q) != 0 {
		t.Fatalf("orphaned message still queued")
	}
}
