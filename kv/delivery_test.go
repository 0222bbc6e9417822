package kv

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestDeliveryStepsAndRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	a, _ := s.Enqueue(ctx, msg("1001@127.0.0.1", "core-a", 1, "one"))
	b, _ := s.Enqueue(ctx, msg("1001@127.0.0.1", "core-a", 2, "two"))
	c, _ := s.Enqueue(ctx, msg("1002@127.0.0.1", "core-a", 3, "three"))

	if _, err := s.BeginAttempt(ctx, a, a+"-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, a, a+"-1", "Sent"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginAttempt(ctx, a, a+"-2", time.Now()); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("second attempt on a delivered message: %v", err)
	}
	if _, err := s.BeginAttempt(ctx, b, b+"-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	m, err := s.EndAttempt(ctx, b, b+"-1", AttemptResult{Text: "Error! Message Not Sent", Refused: true})
	if err != nil || m.Refusals != 1 || m.InFlight != "" || m.Attempts != 1 {
		t.Fatalf("end attempt: %+v %v", m, err)
	}
	if err := s.DeadLetter(ctx, b, "refused"); err != nil {
		t.Fatal(err)
	}
	// c is left in flight, as by a crash.
	if _, err := s.BeginAttempt(ctx, c, c+"-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)

	s = openTest(t, path)
	aors, err := s.QueuedAORs()
	if err != nil || !slices.Equal(aors, []string{"1002@127.0.0.1"}) {
		t.Fatalf("queued recipients %v %v", aors, err)
	}
	for id, want := range map[string]State{a: StateDelivered, b: StateDead, c: StateQueued} {
		m, err := s.Get(id)
		if err != nil || m.State != want {
			t.Fatalf("%s: %v %v, want %s", id, m, err, want)
		}
	}
	m, err = s.BeginAttempt(ctx, c, c+"-2", time.Now())
	if err != nil || m.UncertainResends != 1 || m.InFlight != c+"-2" {
		t.Fatalf("resend after crash: %+v %v", m, err)
	}
}

func TestQueuedAORsSkipsWholeRecipients(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	want := []string{"1@x", "10@x", "2@x", "a-much-longer-user@example.org"}
	for i := range 5 {
		for _, aor := range want {
			if _, err := s.Enqueue(ctx, msg(aor, "core", uint64(i), "b")); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := s.QueuedAORs()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestPingCommits(t *testing.T) {
	s := openTest(t, "")
	before := s.Commits()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Commits() == before {
		t.Fatal("Ping did not commit")
	}
	s.Close(context.Background())
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping on a closed store succeeded")
	}
}
