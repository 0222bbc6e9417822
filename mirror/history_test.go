package mirror

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Ensure History lists a user's messages, sent and received, newest first,
// and pages by received time.
func TestHistory(t *testing.T) {
	t.Parallel()
	m, _ := testMirror(t, Config{})
	var recs []Record
	add := func(from, to string) {
		i := len(recs)
		r := makeRecord(i, 0, uint64(i+1))
		r.From, r.To = from, to
		recs = append(recs, r)
	}
	for i := 0; i < 30; i++ {
		switch i % 3 {
		case 0:
			add("alice", "bob")
		case 1:
			add("bob", "alice")
		case 2:
			add("carol", "bob")
		}
	}
	add("alice", "alice") // to oneself: listed once
	drain(t, m, newOutbox(recs))
	ctx := context.Background()

	var ids []string
	var before time.Time
	for page := 0; ; page++ {
		got, err := m.History(ctx, "alice", before, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if len(got) > 7 {
			t.Fatalf("page %d has %d entries", page, len(got))
		}
		for _, e := range got {
			if e.From != "alice" && e.To != "alice" {
				t.Fatalf("%s is not alice's: %s -> %s", e.ID, e.From, e.To)
			}
			ids = append(ids, e.ID)
		}
		before = got[len(got)-1].Received
	}
	var want []string
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].From == "alice" || recs[i].To == "alice" {
			want = append(want, recs[i].MsgID)
		}
	}
	if len(ids) != len(want) {
		t.Fatalf("got %d entries %v, want %d %v", len(ids), ids, len(want), want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("entry %d=%s, want %s (newest first)", i, ids[i], want[i])
		}
	}

	all, err := m.History(ctx, "bob", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(all), 30; got != want {
		t.Fatalf("bob has %d entries, want %d", got, want)
	}
	none, err := m.History(ctx, "nobody", time.Time{}, 10)
	if err != nil || len(none) != 0 {
		t.Fatalf("History(nobody)=%v, %v", none, err)
	}
}

// Ensure Message returns the latest snapshot with every event in order.
func TestMessage(t *testing.T) {
	t.Parallel()
	m, _ := testMirror(t, Config{})
	recs := genRecords(3, 5, 0)
	drain(t, m, newOutbox(recs))
	ctx := context.Background()

	e, evs, err := m.Message(ctx, msgID(1))
	if err != nil {
		t.Fatal(err)
	}
	var mine []Record
	for _, r := range recs {
		if r.MsgID == msgID(1) {
			mine = append(mine, r)
		}
	}
	last := mine[len(mine)-1]
	if want := entryOf(last, mine[0].Body); !sameEntry(*e, want) {
		t.Fatalf("got %+v\nwant %+v", *e, want)
	}
	if e.Delivered == nil {
		t.Fatal("Delivered is nil for a delivered message")
	}
	if len(evs) != len(mine) {
		t.Fatalf("%d events, want %d", len(evs), len(mine))
	}
	for i, r := range mine {
		if got, want := evs[i], eventOf(r); got != want {
			t.Errorf("event %d: got %+v, want %+v", i, got, want)
		}
	}

	for _, id := range []string{msgID(99), "", "not a ulid at all, far too long"} {
		if _, _, err := m.Message(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Message(%q)=%v, want ErrNotFound", id, err)
		}
	}
}
