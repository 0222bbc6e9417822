package e2e

// inspect and the admin API's views, against the sipsilo
// binary, the FreeSWITCH emulator and real SIP user agents on 127.0.0.1.

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

const e2eToken = "e2e-admin-token"

// adminGet GETs an admin API path with token ("" for none) and decodes a 200's JSON
// into into.
func adminGet(t *testing.T, r *rig, path, token string, into any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode == http.StatusOK && into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, b)
		}
	}
	return res.StatusCode
}

// counts is what must be the same live and offline: everything but the clock.
func summaryCounts(s kv.Summary) kv.Summary {
	s.At, s.OldestQueuedAge, s.FileBytes = time.Time{}, 0, 0
	for i := range s.Recipients {
		s.Recipients[i].OldestAge = 0
		s.Recipients[i].Oldest = s.Recipients[i].Oldest.UTC()
	}
	s.OldestQueued = s.OldestQueued.UTC()
	return s
}

// runInspectBinary runs the sipsilo binary's inspect and returns stdout, stderr and
// the exit code.
func runInspectBinary(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"inspect"}, args...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

func TestInspectAfterARealRunShowsWhatTheAdminAPIShowed(t *testing.T) {
	users := map[string]string{phoneFrom: "1234", phoneOnline: "1234", phoneOffline: "1234"}
	r := newRig(t, fsemu.SwitchOptions{Users: users}, append(fsPath, "--admin-token", e2eToken)...)
	alice, bob := r.ua(phoneFrom), r.ua(phoneOnline)
	register(t, alice)
	register(t, bob)
	in := collect(t, bob)
	offline, online := phoneOffline+"@127.0.0.1", phoneOnline+"@127.0.0.1"
	queued := []string{"confidential one for later", "confidential two <b>&amp;</b>", "confidential three\nlines"}
	for _, b := range queued {
		send(t, alice, phoneOffline, b)
	}
	send(t, alice, phoneOnline, "confidential online a")
	send(t, alice, phoneOnline, "confidential online b")
	in.waitCount(t, 2, 10*time.Second)

	// Without the token, every view is refused.
	for _, p := range []string{"/api/v1/stats", "/api/v1/queue/" + url.PathEscape(offline), "/api/v1/dead",
		"/api/v1/presence", "/api/v1/presence/" + url.PathEscape(online), "/api/v1/messages/01JNOSUCHMESSAGE0000000000"} {
		if code := adminGet(t, r, p, "", nil); code != http.StatusUnauthorized {
			t.Fatalf("GET %s without the token: %d", p, code)
		}
	}

	// Wait until the store is settled: three queued with their exact bodies, two
	// delivered, and the summary the same twice in a row.
	var live kv.Summary
	deadline := time.Now().Add(15 * time.Second)
	for {
		var q kv.Page[kv.MessageView]
		var a, b kv.Summary
		adminGet(t, r, "/api/v1/stats", e2eToken, &a)
		adminGet(t, r, "/api/v1/queue/"+url.PathEscape(offline), e2eToken, &q)
		time.Sleep(200 * time.Millisecond)
		adminGet(t, r, "/api/v1/stats", e2eToken, &b)
		final := len(q.Items) == 3
		for _, m := range q.Items {
			final = final && m.BodyFinal && m.BodySource == kv.BodyESL
		}
		if final && a.ByState[kv.StateDelivered] == 2 && reflect.DeepEqual(summaryCounts(a), summaryCounts(b)) {
			live = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not settle: %+v\nqueue %+v", b, q)
		}
	}
	if live.Messages != 5 || live.ByState[kv.StateQueued] != 3 || live.QueueEntries != 3 || len(live.Recipients) != 1 ||
		live.Recipients[0].AOR != offline || live.Recipients[0].Queued != 3 || live.OldestQueued.IsZero() {
		t.Fatalf("live stats %+v", live)
	}
	var pres presence.View
	if code := adminGet(t, r, "/api/v1/presence/"+url.PathEscape(online), e2eToken, &pres); code != http.StatusOK ||
		!pres.Registered || pres.Reach != presence.Reachable || len(pres.Registrations) != 1 || pres.Evidence == "" {
		t.Fatalf("live presence of %s: %d %+v", online, code, pres)
	}
	var q kv.Page[kv.MessageView]
	adminGet(t, r, "/api/v1/queue/"+url.PathEscape(offline), e2eToken, &q)
	for i, m := range q.Items {
		if m.Body == nil || *m.Body != queued[i] {
			t.Fatalf("queue item %d: %+v", i, m)
		}
	}
	var one kv.MessageView
	if code := adminGet(t, r, "/api/v1/messages/"+q.Items[0].ID, e2eToken, &one); code != http.StatusOK ||
		len(one.History) < 2 || one.History[0].Kind != kv.EventReceived {
		t.Fatalf("message %s: %d %+v", q.Items[0].ID, code, one)
	}

	r.stop()
	before := sumFile(t, r.db)
	out, errOut, code := runInspectBinary(t, "--db", r.db, "--json", "stats")
	var offlineSum kv.Summary
	if code != 0 || json.Unmarshal([]byte(out), &offlineSum) != nil {
		t.Fatalf("inspect stats: exit %d\n%s%s", code, out, errOut)
	}
	if got, want := summaryCounts(offlineSum), summaryCounts(live); !reflect.DeepEqual(got, want) {
		t.Fatalf("inspect after shutdown:\n%+v\nadmin API before it:\n%+v", got, want)
	}

	secrets := append([]string{phoneFrom, phoneOnline, phoneOffline, "confidential"}, queued...)
	views := [][]string{{"stats"}, {"queue"}, {"queue", offline}, {"presence"}, {"presence", online},
		{"message", q.Items[0].ID}, {"dead", "--state", "delivered"}, {"outbox"}}
	for _, v := range views {
		for _, mode := range [][]string{{"--redact"}, {"--redact", "--json"}, {"--json"}} {
			args := append(append([]string{"--db", r.db}, mode...), v...)
			out, errOut, code := runInspectBinary(t, args...)
			if code != 0 {
				t.Fatalf("inspect %v: exit %d\n%s", args, code, errOut)
			}
			if mode[0] == "--redact" {
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Fatalf("inspect %v shows %q:\n%s", args, s, out)
					}
				}
			}
			if got := sumFile(t, r.db); got != before {
				t.Fatalf("inspect %v changed the file", args)
			}
		}
	}
}

func TestInspectAgainstARunningServeFailsFastNamingTheAdminAPI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sipsilo.db")
	startChild(t, nil, "--db", db)
	start := time.Now()
	_, errOut, code := runInspectBinary(t, "--db", db, "stats")
	took := time.Since(start)
	if code == 0 || !strings.Contains(errOut, "in use by a running sipsilo serve") || !strings.Contains(errOut, "admin API") ||
		!strings.Contains(errOut, "/api/v1/stats") {
		t.Fatalf("inspect on a held file: exit %d\n%s", code, errOut)
	}
	// It gives up after its lock timeout (1 s) instead of waiting for the lock
	// as long as serve runs; the bound here only tells giving up from hanging,
	// on a machine of any load.
	if took >= 30*time.Second {
		t.Fatalf("inspect took %v to give up on a held file: it waits on the lock", took)
	}
}
