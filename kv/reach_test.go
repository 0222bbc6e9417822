package kv

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestReachPutLoadDeleteSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	ctx := context.Background()
	if got, err := s.LoadReach(); err != nil || len(got) != 0 {
		t.Fatalf("fresh LoadReach = %v, %v; want empty", got, err)
	}
	rec := []byte(`{"aor":"1001@127.0.0.1"}`)
	if err := s.PutReach(ctx, "1001@127.0.0.1", rec); err != nil {
		t.Fatal(err)
	}
	rec[2] = 'X' // the store must have copied it
	if err := s.PutReach(ctx, "1000@127.0.0.1", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReach(ctx, "1000@127.0.0.1", []byte("b")); err != nil { // replaces
		t.Fatal(err)
	}
	if err := s.PutReach(ctx, "1002@127.0.0.1", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteReach(ctx, "1002@127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteReach(ctx, "never@127.0.0.1"); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s2 := openTest(t, path)
	got, err := s2.LoadReach()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"1001@127.0.0.1": `{"aor":"1001@127.0.0.1"}`, "1000@127.0.0.1": "b"}
	if len(got) != len(want) {
		t.Fatalf("LoadReach = %q, want %q", got, want)
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Fatalf("LoadReach[%q] = %q, want %q", k, got[k], v)
		}
	}
}

func TestReachRejectsBadAddresses(t *testing.T) {
	s := openTest(t, "")
	ctx := context.Background()
	long := strings.Repeat("x", maxAORLen+1)
	for _, aor := range []string{"", long} {
		if err := s.PutReach(ctx, aor, []byte("x")); err == nil {
			t.Errorf("PutReach(%d bytes) succeeded", len(aor))
		}
		if err := s.DeleteReach(ctx, aor); err == nil {
			t.Errorf("DeleteReach(%d bytes) succeeded", len(aor))
		}
	}
	if err := s.PutReach(ctx, strings.Repeat("y", maxAORLen), []byte("x")); err != nil {
		t.Fatalf("an AOR of exactly %d bytes: %v", maxAORLen, err)
	}
	got, err := s.LoadReach()
	if err != nil || len(got) != 1 {
		t.Fatalf("LoadReach = %d records, %v; want only the valid one", len(got), err)
	}
}

func TestReachWritesFailAfterCloseAndOnCancelledContext(t *testing.T) {
	s := openTest(t, "")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled context may still win the race with a free writer; either outcome
	// is fine as long as the error, when there is one, says why.
	if err := s.PutReach(cancelled, "1001@127.0.0.1", []byte("x")); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("PutReach with a cancelled context: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReach(context.Background(), "1001@127.0.0.1", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("PutReach after Close = %v, want ErrClosed", err)
	}
	if err := s.DeleteReach(context.Background(), "1001@127.0.0.1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeleteReach after Close = %v, want ErrClosed", err)
	}
}
