package e2e

// The delivery policy (docs/decisions.md §21) and the admin actions, against the sipsilo binary, the
// FreeSWITCH emulator and real SIP user agents on 127.0.0.1: TTL, quota,
// notices to senders, inject, purge and retry.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

const (
	adminToken = "policy-test-token"
	serviceAOR = "sipsilo@127.0.0.1"
)

// api calls sipsilo's admin API and decodes its JSON answer into out.
func (r *rig) api(method, path string, body any, out any) int {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, "http://"+r.http+"/api/v1"+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			r.t.Fatalf("%s %s: %d %q: %v", method, path, res.StatusCode, raw, err)
		}
	}
	return res.StatusCode
}

// waitLogCount waits until sipsilo has logged n lines containing text.
func (r *rig) waitLogCount(text string, n int, within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for strings.Count(r.proc.log(), text) < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("fewer than %d log lines with %q within %v", n, text, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fromService returns what ua received from the notice service address.
func fromService(in *inbox) []fsemu.Received {
	var out []fsemu.Received
	for _, m := range in.all() {
		if strings.Contains(m.From, "sip:"+serviceAOR) {
			out = append(out, m)
		}
	}
	return out
}

// TestPolicyExpiredMessageIsRecordedNeverDeliveredAndNoticed: a message to a
// recipient who stays away past the TTL is expired by the sweep, not delivered
// when the recipient comes back, and recorded; its sender hears "stored" and
// then "expired", and nothing from the service address is stored or noticed.
func TestPolicyExpiredMessageIsRecordedNeverDeliveredAndNoticed(t *testing.T) {
	users := map[string]string{"1000": "1234", "1001": "1234", "sipsilo": "1234"}
	r := newRig(t, fsemu.SwitchOptions{Users: users}, append(fsPath, "--ttl", "1s", "--expire-every", "200ms",
		"--notice-from", serviceAOR, "--notice-stored", "--notice-expired")...)
	alice, bob, svc := r.ua("1000"), r.ua("1001"), r.ua("sipsilo")
	register(t, alice)
	register(t, svc)
	aliceIn, bobIn, svcIn := collect(t, alice), collect(t, bob), collect(t, svc)

	send(t, alice, "1001", "too late | ${x}")
	// Someone writing from the service address (a notice looping back): left
	// to FreeSWITCH, never stored, never noticed.
	send(t, svc, "1001", "from the service address")
	r.proc.waitLine(t, "INFO", "message expired undelivered", 10*time.Second)

	register(t, bob)
	// Delivery would take a few ms once bob is registered; give it plenty.
	time.Sleep(time.Second)
	if got := bobIn.all(); len(got) != 0 {
		t.Fatalf("recipient received %d messages after their expiry: %q", len(got), got[0].Body)
	}
	notices := fromService(aliceIn)
	if len(notices) != 2 {
		t.Fatalf("sender got %d notices, want stored and expired", len(notices))
	}
	for i, want := range []string{"stored", "expired undelivered"} {
		b := string(notices[i].Body)
		if !strings.Contains(b, want) || !strings.Contains(b, "1001@127.0.0.1") || strings.Contains(b, "too late") {
			t.Errorf("notice %d: %q", i, b)
		}
	}
	if got := svcIn.all(); len(got) != 0 {
		t.Fatalf("the service address received %d messages", len(got))
	}

	r.stop()
	msgs := r.messages()
	m := msgs["too late | ${x}"]
	if m == nil || m.State != kv.StateExpired || m.Attempts != 0 {
		t.Fatalf("expired message recorded as %+v", m)
	}
	if !slices.ContainsFunc(m.History, func(h kv.HistoryEntry) bool { return h.Kind == kv.EventExpired }) ||
		!slices.Equal(m.Notices, []string{kv.NoticeStored, kv.NoticeExpired}) {
		t.Fatalf("history %+v, notices %v", m.History, m.Notices)
	}
	if _, ok := msgs["from the service address"]; ok || len(msgs) != 1 {
		t.Fatalf("stored %d messages, want only the expired one", len(msgs))
	}
}

// TestPolicyQuotaOverflowGoesStockAndRetryDrainsTheQueue: with the recipient's
// queue full (held by a refusal's backoff), the next message is refused by the
// chatplan and FreeSWITCH delivers it as stock; the operator's retry then
// delivers the queue, each message once, in order.
func TestPolicyQuotaOverflowGoesStockAndRetryDrainsTheQueue(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, append(fsPath, "--quota", "3", "--retry-min", "1h", "--retry-max", "1h",
		"--admin-token", adminToken)...)
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)
	register(t, bob)
	in := collect(t, bob)
	bob.SetAnswer(486)
	send(t, alice, "1001", "q1")
	r.proc.waitLine(t, "INFO", "recipient refused", 5*time.Second)
	bob.SetAnswer(200)
	send(t, alice, "1001", "q2")
	send(t, alice, "1001", "q3") // the queue holds 3 now
	send(t, alice, "1001", "over quota")
	got := in.waitCount(t, 1, 5*time.Second)
	if string(got[0].Body) != "over quota" {
		t.Fatalf("first delivery %q, want the message over quota, delivered by FreeSWITCH itself", got[0].Body)
	}
	r.proc.waitLine(t, "DEBUG", "recipient over quota, left to FreeSWITCH", time.Second)

	var res struct {
		Backoff     bool `json:"backoff_cleared"`
		Deliverable bool `json:"deliverable"`
	}
	if code := r.api("POST", "/queue/"+url.PathEscape("1001@127.0.0.1")+"/retry", nil, &res); code != 200 || !res.Backoff || !res.Deliverable {
		t.Fatalf("retry: %d %+v", code, res)
	}
	got = in.waitCount(t, 4, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would come now
	var bodies []string
	for _, m := range in.all() {
		bodies = append(bodies, string(m.Body))
	}
	if !slices.Equal(bodies, []string{"over quota", "q1", "q2", "q3"}) {
		t.Fatalf("received %q", bodies)
	}
	r.stop()
	msgs := r.messages()
	for _, b := range []string{"q1", "q2", "q3"} {
		if m := msgs[b]; m == nil || m.State != kv.StateDelivered {
			t.Fatalf("%s: %+v", b, m)
		}
	}
	if _, ok := msgs["over quota"]; ok {
		t.Fatal("the message over quota was stored")
	}
}

// TestPolicyInjectPurgeAndDelivery: messages injected through the admin API are
// delivered like any other, byte for byte and once; purged ones never are, and
// the store records both.
func TestPolicyInjectPurgeAndDelivery(t *testing.T) {
	r := newRig(t, fsemu.SwitchOptions{}, append(fsPath, "--admin-token", adminToken, "--max-body", "1024")...)
	bob := r.ua("1001")
	in := collect(t, bob)
	inject := func(body string) string {
		var out struct{ ID string }
		if code := r.api("POST", "/messages", map[string]string{"from": "crm@127.0.0.1", "to": "1001@127.0.0.1",
			"body": body}, &out); code != http.StatusCreated {
			t.Fatalf("inject %q: %d", body, code)
		}
		return out.ID
	}
	hostile := " lead %41 | pipe 'sq' \"dq\" back\\slash\nnewline\ttab ${x} ümlaut trail "
	keep := inject(hostile)
	gone := inject("purge me")
	inject("purge the queue 1")
	var e struct{ Error string }
	if code := r.api("POST", "/messages", map[string]string{"from": "crm@127.0.0.1", "to": "1001@127.0.0.1",
		"body": strings.Repeat("x", 1025)}, &e); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("over --max-body: %d %q", code, e.Error)
	}

	var p struct {
		Purged int      `json:"purged"`
		IDs    []string `json:"ids"`
	}
	if code := r.api("DELETE", "/messages/"+gone, nil, &p); code != 200 || p.Purged != 1 {
		t.Fatalf("purge message: %d %+v", code, p)
	}
	register(t, bob)
	got := in.waitCount(t, 2, 10*time.Second)
	if string(got[0].Body) != hostile || string(got[1].Body) != "purge the queue 1" {
		t.Fatalf("received %q, %q", got[0].Body, got[1].Body)
	}
	if !strings.Contains(got[0].From, "sip:crm@127.0.0.1") || got[0].ContentType != "text/plain" {
		t.Fatalf("From %q, Content-Type %q", got[0].From, got[0].ContentType)
	}

	// The device has them; wait until sipsilo has the results too (the switch
	// reports a chat's result 100 ms after the device's 2xx at the earliest).
	r.waitLogCount("msg=delivered ", 2, 5*time.Second)

	// Away again: what is queued now is purged as a whole queue.
	// (A send relay may still start before it hears of the unregistration
	// fails at the switch, which no longer has a contact.)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bob.Unregister(ctx); err != nil {
		t.Fatal(err)
	}
	q1, q2 := inject("queued 1"), inject("queued 2")
	if code := r.api("DELETE", "/queue/1001@127.0.0.1", nil, &p); code != 200 || !slices.Equal(p.IDs, []string{q1, q2}) {
		t.Fatalf("purge queue: %d %+v", code, p)
	}
	register(t, bob)
	time.Sleep(time.Second)
	if n := len(in.all()); n != 2 {
		t.Fatalf("received %d messages, want 2 (nothing purged)", n)
	}

	r.stop()
	msgs := r.messages()
	if m := msgs[hostile]; m.ID != keep || m.State != kv.StateDelivered || m.BodySource != kv.BodyAPI || m.Attempts != 1 {
		t.Fatalf("injected: %+v", m)
	}
	for _, b := range []string{"purge me", "queued 1", "queued 2"} {
		if m := msgs[b]; m == nil || m.State != kv.StatePurged || b == "purge me" && m.Attempts != 0 {
			t.Fatalf("%s: %+v", b, m)
		}
	}
}
