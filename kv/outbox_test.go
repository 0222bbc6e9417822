package kv

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestOutboxRecordsEveryStateChangeInOrder(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "sipsilo.db"), Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	m := msg("1001@127.0.0.1", "core-a", 1, "query copy")
	id, err := s.Enqueue(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ConfirmBody(ctx, id, "core-a", 1, []byte("exact ")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginAttempt(ctx, id, id+"-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EndAttempt(ctx, id, id+"-1", AttemptResult{Text: "Error! Message Not Sent", Refused: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginAttempt(ctx, id, id+"-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, id, id+"-2", "Sent"); err != nil {
		t.Fatal(err)
	}
	other, _ := s.Enqueue(ctx, msg("1002@127.0.0.1", "core-a", 2, "x"))
	if err := s.Release(ctx, other, "answer lost"); err != nil {
		t.Fatal(err)
	}

	recs, err := s.OutboxBatch(100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id, kind, body string
		seq            int
		state          State
	}{
		{id, EventReceived, "query copy", 1, StateQueued},
		{id, EventBody, "exact ", 2, StateQueued},
		{id, EventAttempt, "", 3, StateQueued},
		{id, EventDelivered, "", 4, StateDelivered},
		{other, EventReceived, "x", 1, StateQueued},
		{other, EventReleased, "", 2, StateReleased},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.MsgID != w.id || r.Kind != w.kind || r.EventSeq != w.seq || string(r.Message.Body) != w.body ||
			r.Message.State != w.state || (i > 0 && r.Seq <= recs[i-1].Seq) {
			t.Fatalf("record %d: %+v (message %+v), want %+v", i, r, r.Message, w)
		}
	}
	if recs[2].Detail != "Error! Message Not Sent" || recs[3].Message.Attempts != 2 {
		t.Fatalf("attempt detail %q, attempts %d", recs[2].Detail, recs[3].Message.Attempts)
	}

	// Batches respect both limits, and a delete removes exactly what was mirrored.
	if b, _ := s.OutboxBatch(2, 1<<20); len(b) != 2 {
		t.Fatalf("batch of %d, limit 2", len(b))
	}
	if b, _ := s.OutboxBatch(100, 1); len(b) != 1 {
		t.Fatalf("batch of %d under a 1-byte limit, want the first record alone", len(b))
	}
	if err := s.OutboxDelete(ctx, recs[3].Seq); err != nil {
		t.Fatal(err)
	}
	left, _ := s.OutboxBatch(100, 1<<20)
	if len(left) != 2 || left[0].Seq != recs[4].Seq {
		t.Fatalf("after delete: %+v", left)
	}
	if n, _ := s.OutboxLen(); n != 2 {
		t.Fatalf("OutboxLen %d", n)
	}
}

func TestNoOutboxWithoutMirror(t *testing.T) {
	s := openTest(t, "")
	ctx := context.Background()
	id, _ := s.Enqueue(ctx, msg("1001@127.0.0.1", "core-a", 1, "b"))
	if err := s.Release(ctx, id, "x"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.OutboxLen(); n != 0 {
		t.Fatalf("%d outbox records without a mirror", n)
	}
}
