package cli

// sipsilo inspect, run in-process against bbolt files made by kv and presence.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// Phone numbers as user parts, and bodies no other output could contain by chance.
const (
	phoneFrom    = "4915112340001"
	phoneOnline  = "4915112340002"
	phoneOffline = "4915112340003"
	domain       = "pbx.example.org"
)

var secretBodies = []string{"confidential alpha 7f3a", "confidential beta \xff\xfe binary", "confidential gamma dead"}

type inspectFile struct {
	path string
	ids  map[string]string
}

// newInspectFile writes a database as a daemon would leave it: two messages queued
// for the offline user (one not UTF-8), one dead letter whose reason quotes the
// recipient, one delivered, the outbox, and a presence record made by presence
// itself from a sofia::register event.
func newInspectFile(t *testing.T) inspectFile {
	t.Helper()
	ctx := context.Background()
	f := inspectFile{path: filepath.Join(t.TempDir(), "sipsilo.db"), ids: map[string]string{}}
	s, err := kv.Open(f.path, kv.Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	add := func(name, to, body string, seq uint64) {
		id, err := s.Enqueue(ctx, &kv.Message{From: phoneFrom + "@" + domain, To: to + "@" + domain,
			FromFull: `"Alice Example" <sip:` + phoneFrom + "@" + domain + ">;tag=xyz", ContentType: "text/plain",
			Body: []byte(body), BodySource: kv.BodyQuery, CoreUUID: "core-1", EventSeq: seq})
		if err != nil {
			t.Fatal(err)
		}
		f.ids[name] = id
	}
	add("q1", phoneOffline, secretBodies[0], 1)
	add("q2", phoneOffline, secretBodies[1], 2)
	add("dead", phoneOnline, secretBodies[2], 3)
	add("delivered", phoneOnline, "confidential delta", 4)
	if _, err := s.BeginAttempt(ctx, f.ids["dead"], "a-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EndAttempt(ctx, f.ids["dead"], "a-1", kv.AttemptResult{Text: "486 Busy Here from sip:" + phoneOnline + "@10.0.0.5", Refused: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, f.ids["dead"], "refused by "+phoneOnline+" 5 times"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(ctx, f.ids["delivered"], "a-2", "Sent"); err != nil {
		t.Fatal(err)
	}
	pres, err := presence.New(presence.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	reg := presence.Event{Kind: presence.Registered, AOR: phoneOnline + "@" + domain, CallID: "cid-" + phoneOnline,
		Contact: `"Bob" <sip:` + phoneOnline + "@10.0.0.5:5062;ob>", ExpiresIn: time.Hour,
		NetworkIP: "10.0.0.5", NetworkPort: 5062, Profile: "internal", Source: "sofia::register",
		Stream: "core-1", Seq: 10}
	if err := pres.ApplyEvent(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func sumFile(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// inspect runs `sipsilo inspect args...` in-process.
func inspect(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := Main(context.Background(), append([]string{"inspect"}, args...), &out, &errOut)
	return out.String(), errOut.String(), err
}

// everyView is each view of f, with its arguments.
func everyView(f inspectFile) [][]string {
	return [][]string{
		{"stats"}, {"queue"}, {"queue", phoneOffline + "@" + domain}, {"presence"},
		{"presence", phoneOnline + "@" + domain}, {"message", f.ids["dead"]}, {"message", f.ids["q2"]},
		{"dead"}, {"dead", "--state", "delivered"}, {"outbox"},
	}
}

func TestInspectViewsNeverChangeTheFile(t *testing.T) {
	f := newInspectFile(t)
	before := sumFile(t, f.path)
	for _, view := range everyView(f) {
		for _, mode := range [][]string{nil, {"--json"}, {"--redact"}, {"--json", "--redact"}} {
			args := append(append([]string{"--db", f.path}, mode...), view...)
			out, errOut, err := inspect(args...)
			if err != nil || out == "" {
				t.Fatalf("inspect %v: %v\n%s%s", args, err, out, errOut)
			}
			if mode != nil && mode[0] == "--json" && !json.Valid([]byte(out)) {
				t.Fatalf("inspect %v: not JSON:\n%s", args, out)
			}
			if got := sumFile(t, f.path); got != before {
				t.Fatalf("inspect %v changed the file", args)
			}
		}
	}
}

func TestInspectRedactHidesBodiesAndUserParts(t *testing.T) {
	f := newInspectFile(t)
	secrets := append([]string{phoneFrom, phoneOnline, phoneOffline, "Alice", "Bob", "confidential"}, secretBodies...)
	for _, view := range everyView(f) {
		for _, mode := range [][]string{{"--redact"}, {"--redact", "--json"}} {
			args := append(append([]string{"--db", f.path}, view...), mode...)
			out, _, err := inspect(args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Fatalf("inspect %v shows %q:\n%s", args, s, out)
				}
			}
			// base64 of a body would hide it from the search above.
			if strings.Contains(out, "body_base64") {
				t.Fatalf("inspect %v has a body_base64:\n%s", args, out)
			}
		}
	}
	// What stays: the domain, lengths and stable tokens.
	out, _, _ := inspect("--db", f.path, "--redact", "--redact-key", "k", "message", f.ids["q1"])
	again, _, _ := inspect("--db", f.path, "--redact", "--redact-key", "k", "--json", "queue", phoneOffline+"@"+domain)
	var page kv.Page[kv.MessageView]
	if err := json.Unmarshal([]byte(again), &page); err != nil {
		t.Fatal(err)
	}
	first := page.Items[0]
	if !strings.Contains(out, "@"+domain) || first.BodyLen != len(secretBodies[0]) || first.BodyHash == "" ||
		!strings.Contains(out, first.BodyHash) || !strings.Contains(out, first.To) {
		t.Fatalf("redacted message lost what it should keep:\n%s\n%+v", out, first)
	}
}

func TestInspectJSON(t *testing.T) {
	f := newInspectFile(t)
	out, _, err := inspect("--db", f.path, "--json", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var sum kv.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Messages != 4 || sum.ByState[kv.StateQueued] != 2 || sum.ByState[kv.StateDead] != 1 ||
		sum.ByState[kv.StateDelivered] != 1 || sum.QueueEntries != 2 || len(sum.Recipients) != 1 ||
		sum.Recipients[0].AOR != phoneOffline+"@"+domain || sum.OutboxRecords != 7 || sum.PresenceRecords != 1 || sum.FileBytes == 0 {
		t.Fatalf("stats %s", out)
	}

	// Flags after the view; paging by --limit and --after.
	out, _, err = inspect("queue", phoneOffline+"@"+domain, "--db", f.path, "--json", "--limit", "1")
	var page kv.Page[kv.MessageView]
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Items) != 1 || page.Next != f.ids["q1"] ||
		*page.Items[0].Body != secretBodies[0] {
		t.Fatalf("queue page 1: %v\n%s", err, out)
	}
	out, _, err = inspect("queue", phoneOffline+"@"+domain, "--db", f.path, "--json", "--after", page.Next)
	page = kv.Page[kv.MessageView]{}
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Items) != 1 || page.Next != "" ||
		string(page.Items[0].BodyBase64) != secretBodies[1] {
		t.Fatalf("queue page 2: %v\n%s", err, out)
	}

	out, _, err = inspect("--db", f.path, "--json", "message", f.ids["dead"])
	var m kv.MessageView
	if err != nil || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("message: %v\n%s", err, out)
	}
	kinds := []string{}
	for _, h := range m.History {
		kinds = append(kinds, h.Kind)
	}
	if m.State != kv.StateDead || strings.Join(kinds, ",") != "received,attempt,dead" || m.Refusals != 1 {
		t.Fatalf("dead letter %+v", m)
	}

	out, _, err = inspect("--db", f.path, "--json", "presence", phoneOnline+"@"+domain)
	var p presence.View
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || !p.Registered || p.Reach != presence.Reachable ||
		len(p.Registrations) != 1 || p.Registrations[0].NetworkPort != 5062 || p.Evidence != "sofia::register" {
		t.Fatalf("presence: %v\n%s", err, out)
	}
	if len(p.Devices) != 1 || p.Devices[0].Key != "contact:sip:"+phoneOnline+"@10.0.0.5:5062" || !p.Devices[0].Deliverable {
		t.Fatalf("presence devices: %+v", p.Devices)
	}

	out, _, err = inspect("--db", f.path, "--json", "--limit", "3", "outbox")
	var ob kv.Page[outboxView]
	if err != nil || json.Unmarshal([]byte(out), &ob) != nil || len(ob.Items) != 3 || ob.Items[0].Seq != 1 ||
		ob.Items[0].Kind != kv.EventReceived || ob.Next != "3" {
		t.Fatalf("outbox: %v\n%s", err, out)
	}
}

func TestInspectTables(t *testing.T) {
	f := newInspectFile(t)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"stats"}, []string{"messages", "queued", "2", "outbox backlog", "7 records", phoneOffline + "@" + domain}},
		{[]string{"queue", phoneOffline + "@" + domain}, []string{"ID", f.ids["q1"], secretBodies[0], "not UTF-8"}},
		{[]string{"dead"}, []string{f.ids["dead"], "refused by"}},
		{[]string{"message", f.ids["dead"]}, []string{"received", "attempt", "486 Busy Here"}},
		{[]string{"presence"}, []string{phoneOnline + "@" + domain, "reachable", "sofia::register"}},
		{[]string{"outbox", "--limit", "2"}, []string{"SEQ", "more: --after 2"}},
	} {
		out, _, err := inspect(append([]string{"--db", f.path}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("inspect %v lacks %q:\n%s", c.args, w, out)
			}
		}
		if strings.ContainsAny(out, "\xff\x1b") {
			t.Errorf("inspect %v writes raw bytes to the terminal:\n%q", c.args, out)
		}
	}
}

func TestInspectRefusesWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	empty := filepath.Join(dir, "empty.db")
	garbage := filepath.Join(dir, "garbage.db")
	foreign := filepath.Join(dir, "foreign.db")
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600)
	db, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
	db.Close()
	for _, c := range []struct{ path, want string }{
		{missing, "does not exist"}, {empty, "is empty"}, {garbage, "not a sipsilo database"},
		{foreign, "not a sipsilo database"}, {dir, "not a file"},
	} {
		_, _, err := inspect("--db", c.path, "stats")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", filepath.Base(c.path), err, c.want)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("inspect created the missing file")
	}

	f := newInspectFile(t)
	for _, args := range [][]string{
		{"message", "01JNOSUCHMESSAGE0000000000"}, {"queue", "x@y", "--after", "nope"},
		{"presence", "nobody@" + domain}, {"outbox", "--after", "x"},
	} {
		if _, _, err := inspect(append([]string{"--db", f.path}, args...)...); err == nil {
			t.Errorf("inspect %v succeeded", args)
		}
	}
	for _, args := range [][]string{{}, {"nonsense"}, {"message"}, {"stats", "extra"}, {"--bogus", "stats"}} {
		if _, _, err := inspect(append([]string{"--db", f.path}, args...)...); err == nil {
			t.Errorf("inspect %v succeeded", args)
		}
	}
}

// A damaged page must end in an error, not a crash: overwrite everything past the
// meta pages of a real file.
func TestInspectSurvivesADamagedFile(t *testing.T) {
	f := newInspectFile(t)
	b, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 4 * 4096; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(f.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, view := range everyView(f) {
		out, _, err := inspect(append([]string{"--db", f.path}, view...)...)
		if err == nil {
			t.Logf("inspect %v on a damaged file:\n%s", view, out)
			continue
		}
		if !errors.Is(err, kv.ErrCorrupt) && !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("inspect %v: %v, want a corrupt-file error", view, err)
		}
	}
}

func TestInspectNamesTheAdminAPIWhenLocked(t *testing.T) {
	f := newInspectFile(t)
	s, err := kv.Open(f.path, kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	_, _, err = inspect("--db", f.path, "--lock-timeout", "100ms", "stats")
	if err == nil || !strings.Contains(err.Error(), "in use by a running sipsilo serve") ||
		!strings.Contains(err.Error(), "/api/v1/stats") || !strings.Contains(err.Error(), "Authorization: Bearer") {
		t.Fatalf("locked file: %v", err)
	}
}

// The message view says when an undelivered message expires (--ttl).
func TestInspectMessageShowsItsExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sipsilo.db")
	s, err := kv.Open(path, kv.Options{TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	id, err := s.Enqueue(context.Background(), &kv.Message{From: "1000@x", To: "1001@x", Body: []byte("hi"), Received: received})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := inspect("--db", path, "message", id)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	if !strings.Contains(out, "expires       2026-11-22 08:00:00Z") {
		t.Fatalf("no expiry in:\n%s", out)
	}
}
