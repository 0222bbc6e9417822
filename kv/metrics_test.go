package kv

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// queueKeyN counts the queue bucket the slow way, for comparison.
func queueKeyN(t *testing.T, s *Store) int {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Queued
}

func queueStats(t *testing.T, s *Store) QueueStats {
	t.Helper()
	st, err := s.QueueStats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The depth kept from the commits matches the queue bucket through intake,
// every way out of the queue, a way back in (a late body revives a no_body
// message) and a reopen; Finished counts the ways out since Open.
func TestQueueDepthAndFinishedFollowCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s := openTest(t, path)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	var ids []string
	for i, to := range []string{"1001@127.0.0.1", "1001@127.0.0.1", "1002@127.0.0.1", "1001@127.0.0.1", "1003@127.0.0.1"} {
		m := msg(to, "core-a", uint64(10+i), "m")
		m.Received = t0.Add(time.Duration(i) * time.Second)
		if i == 4 {
			m.Body, m.BodySource = nil, BodyAwaiting // its body comes over ESL, or never
		}
		id, err := s.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if got := queueStats(t, s); got.Depth != 5 || got.Recipients != 3 || !got.Oldest.Equal(t0) {
		t.Fatalf("queue %+v, want 5 messages, 3 recipients, oldest %v", got, t0)
	}

	if _, err := s.BeginAttempt(ctx, ids[0], "a1", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, ids[0], "a1", "Sent"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, ids[1], "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, ids[2], "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, ids[2], "again: not queued, no change"); err != nil {
		t.Fatal(err)
	}
	if m, err := s.FinalizeBody(ctx, ids[4]); err != nil || m.State != StateNoBody {
		t.Fatalf("finalize without a body: %+v %v", m, err)
	}
	got := queueStats(t, s)
	if got.Depth != 1 || got.Depth != queueKeyN(t, s) || got.Recipients != 1 || !got.Oldest.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("queue %+v (bucket holds %d), want the one message of 1001 left", got, queueKeyN(t, s))
	}
	if _, _, err := s.ConfirmBody(ctx, ids[4], "core-a", 14, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if got := queueStats(t, s); got.Depth != 2 || got.Depth != queueKeyN(t, s) {
		t.Fatalf("queue %+v after a late body revived a message, bucket %d", got, queueKeyN(t, s))
	}
	fin := s.Finished()
	if fin[StateDelivered] != 1 || fin[StateReleased] != 1 || fin[StateDead] != 1 || fin[StateNoBody] != 1 || len(fin) != 4 {
		t.Fatalf("finished %v", fin)
	}

	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path)
	if got := queueStats(t, s); got.Depth != 2 || got.Recipients != 2 {
		t.Fatalf("queue after reopen %+v", got)
	}
	if fin := s.Finished(); len(fin) != 0 {
		t.Fatalf("finished after reopen %v, want counts since this Open", fin)
	}
}

// Recipients and the oldest head are found across more recipients than one
// read transaction visits.
func TestQueueStatsAcrossManyRecipients(t *testing.T) {
	s := openTest(t, "")
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	n, recipients := 3*recipientsPerView, recipientsPerView+7
	fillQueue(t, s, n, recipients, t0)
	got := queueStats(t, s)
	if got.Depth != n || got.Recipients != recipients || !got.Oldest.Equal(t0) {
		t.Fatalf("queue %+v, want %d messages, %d recipients, oldest %v", got, n, recipients, t0)
	}
	if empty := queueStats(t, openTest(t, "")); empty != (QueueStats{}) {
		t.Fatalf("empty store: %+v", empty)
	}
}

// The backlog is counted from the first and last sequence, which stays exact as
// the mirror deletes from the front.
func TestOutboxStatsCountsTheBacklog(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "sipsilo.db"), Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		m := msg("1001@127.0.0.1", "core-a", uint64(i), "m")
		m.Received = t0.Add(time.Duration(i) * time.Second)
		if _, err := s.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.OutboxBatch(10, 1<<20)
	if err != nil || len(recs) != 3 {
		t.Fatalf("outbox %d records, %v", len(recs), err)
	}
	for _, c := range []struct {
		upTo   uint64
		want   int
		oldest time.Time
	}{
		{0, 3, t0},
		{recs[0].Seq, 2, t0.Add(time.Second)},
		{recs[2].Seq, 0, time.Time{}},
	} {
		if c.upTo > 0 {
			if err := s.OutboxDelete(ctx, c.upTo); err != nil {
				t.Fatal(err)
			}
		}
		st, err := s.OutboxStats()
		if n, _ := s.OutboxLen(); err != nil || st.Records != c.want || n != c.want || !st.Oldest.Equal(c.oldest) {
			t.Fatalf("after delete up to %d: %+v (OutboxLen %d) %v, want %d from %v", c.upTo, st, n, err, c.want, c.oldest)
		}
	}
}
