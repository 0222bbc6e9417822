package freeswitch

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/fsreal"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// multiRegContact sets multiple-registrations=contact on profile internal through
// fsreal's hook for extra profile params.
var multiRegContact = conf.File{Path: "sip_profiles/internal-ping-params.xml.snippet",
	Data: []byte(`    <param name="multiple-registrations" value="contact"/>`)}

// On FreeSWITCH 1.10.12 with multiple-registrations=contact, presence (fed by
// `sofia xmlstatus profile internal reg`) lists both phones of a user as two
// devices, and `chat` to presence.ChatTo's destination reaches that phone only
// and reports that phone's own answer (docs/decisions.md §28).
func TestRealFSChatToReachesOneDevice(t *testing.T) {
	if err := fsreal.Available(); err != nil {
		t.Skip(err)
	}
	fs := fsreal.Start(t, fsreal.Options{Files: []conf.File{multiRegContact}})
	var phones [2]*fsemu.UA
	for i := range phones {
		ua, err := fsemu.NewUA(fsemu.UAOptions{User: "1001", Password: fsreal.Password, Switch: fs.SIPAddr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ua.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = ua.Register(ctx, time.Hour)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		phones[i] = ua
	}
	a, b := phones[0], phones[1]

	store, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(context.Background()) })
	m, err := presence.New(presence.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	const aor = "1001@" + fsreal.Domain
	if err := m.Resync(context.Background(), "internal", fs.MustAPI(t, "sofia xmlstatus profile internal reg"), ""); err != nil {
		t.Fatal(err)
	}
	keyA, keyB := "contact:sip:1001@"+a.Addr(), "contact:sip:1001@"+b.Addr()
	if got := m.Targets(aor); len(got) != 2 || !((got[0] == keyA && got[1] == keyB) || (got[0] == keyB && got[1] == keyA)) {
		t.Fatalf("targets %q, want %q and %q", got, keyA, keyB)
	}
	chat := func(key, body string) string {
		t.Helper()
		to, ok := m.ChatTo(aor, key)
		if !ok {
			t.Fatalf("no chat destination for %s", key)
		}
		t.Logf("chat destination %q", to)
		return strings.TrimSpace(fs.MustAPI(t, "chat sip|1000@"+fsreal.Domain+"|"+to+"|"+body+"|text/plain"))
	}
	next := func(u *fsemu.UA) string {
		t.Helper()
		select {
		case r := <-u.Received():
			return string(r.Body)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s received nothing", u.Addr())
			return ""
		}
	}
	if got := chat(keyA, "to-A"); got != "Sent" {
		t.Fatalf("chat to A: %q", got)
	}
	if got := chat(keyB, "to-B"); got != "Sent" {
		t.Fatalf("chat to B: %q", got)
	}
	// Each phone's first message is its own: neither chat reached the other.
	if got := next(a); got != "to-A" {
		t.Fatalf("A got %q first", got)
	}
	if got := next(b); got != "to-B" {
		t.Fatalf("B got %q first", got)
	}
	// B refuses: the chat to B reports B's answer, though A would take it.
	b.SetAnswer(486)
	if got := chat(keyB, "refused-by-B"); got == "Sent" {
		t.Fatal("chat to B reported Sent while B answered 486")
	}
	if got := chat(keyA, "to-A-2"); got != "Sent" {
		t.Fatalf("chat to A: %q", got)
	}
	if got := next(a); got != "to-A-2" {
		t.Fatalf("A got %q: B's refused message reached A", got)
	}
}
