package e2e

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// inspectJSON runs the binary's inspect with --json on the rig's stopped file and
// decodes its answer.
func inspectJSON(t *testing.T, r *rig, into any, args ...string) {
	t.Helper()
	out, errOut, code := runInspectBinary(t, append([]string{"--db", r.db, "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("inspect %q: exit %d: %s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("inspect %q: %v\n%s", args, err, out)
	}
}

type inspectPage struct {
	Items []struct {
		ID       string   `json:"id"`
		State    kv.State `json:"state"`
		Refusals int      `json:"refusals"`
	} `json:"items"`
}

func (p inspectPage) ids() []string {
	var out []string
	for _, m := range p.Items {
		out = append(out, m.ID)
	}
	return out
}

// TestPurgeAndRetryChangeWhatInspectShows: an operator's purge and retry through
// the admin API are what `sipsilo inspect` shows once the daemon is stopped.
func TestPurgeAndRetryChangeWhatInspectShows(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, append(fsPath, "--admin-token", adminToken, "--dead-after", "1")...)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)
	register(t, bob)
	in := collect(t, bob)

	// A live phone that refuses makes a dead letter at once (--dead-after 1).
	bob.SetAnswer(486)
	send(t, alice, "1001", "refused")
	r.proc.waitLine(t, "WARN", "dead-lettered", 10*time.Second)
	ctx := t.Context()
	if err := bob.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	bob.SetAnswer(200)
	for _, b := range []string{"one", "two", "three"} {
		send(t, alice, "1001", b)
	}
	waitQueued := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var s kv.Summary
			r.api("GET", "/stats", nil, &s)
			if s.ByState[kv.StateQueued] == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("queued %d, want %d", s.ByState[kv.StateQueued], n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitQueued(3)
	r.stop()

	var before kv.Summary
	inspectJSON(t, r, &before, "stats")
	var dead, queue inspectPage
	inspectJSON(t, r, &dead, "dead")
	inspectJSON(t, r, &queue, "queue", "1001@127.0.0.1")
	if before.ByState[kv.StateQueued] != 3 || before.ByState[kv.StateDead] != 1 || len(dead.Items) != 1 || len(queue.Items) != 3 {
		t.Fatalf("before: by state %v, dead %v, queue %v", before.ByState, dead.ids(), queue.ids())
	}
	deadID, two := dead.Items[0].ID, queue.Items[1].ID

	r.start()
	var p struct {
		Purged int `json:"purged"`
	}
	if code := r.api("DELETE", "/messages/"+two, nil, &p); code != 200 || p.Purged != 1 {
		t.Fatalf("purge: %d %+v", code, p)
	}
	var res struct {
		Requeued bool `json:"requeued"`
	}
	if code := r.api("POST", "/messages/"+deadID+"/retry", nil, &res); code != 200 || !res.Requeued {
		t.Fatalf("retry of the dead letter: %d %+v", code, res)
	}
	waitQueued(3) // two left, the dead letter came back
	r.stop()

	var after kv.Summary
	inspectJSON(t, r, &after, "stats")
	var purged, queue2, dead2 inspectPage
	inspectJSON(t, r, &purged, "dead", "--state", "purged")
	inspectJSON(t, r, &queue2, "queue", "1001@127.0.0.1")
	inspectJSON(t, r, &dead2, "dead")
	if after.ByState[kv.StatePurged] != 1 || after.ByState[kv.StateDead] != 0 || after.ByState[kv.StateQueued] != 3 {
		t.Fatalf("after: by state %v", after.ByState)
	}
	if !slices.Equal(purged.ids(), []string{two}) || len(dead2.Items) != 0 {
		t.Fatalf("purged %v, dead %v", purged.ids(), dead2.ids())
	}
	// The dead letter is queued again in its old place, first, with its refusals reset.
	if got := queue2.ids(); len(got) != 3 || got[0] != deadID || slices.Contains(got, two) || queue2.Items[0].Refusals != 0 {
		t.Fatalf("queue after: %+v", queue2.Items)
	}

	// And the retried dead letter is delivered like the rest when bob is back.
	r.start()
	register(t, bob)
	got := in.waitCount(t, 3, 10*time.Second)
	if b := []string{string(got[0].Body), string(got[1].Body), string(got[2].Body)}; !slices.Equal(b, []string{"refused", "one", "three"}) {
		t.Fatalf("delivered %q", b)
	}
}
