package fsreal

import (
	"context"
	"strings"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
)

// TestRealFSHarness: two FreeSWITCHes side by side on their own ports; a user
// registers with one and is found there only; a restart keeps the ports.
func TestRealFSHarness(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{Sipsilo: &conf.Options{HTTPAddr: "127.0.0.1:9"}, ESLPassword: "pa$$ <&> word"})
	if a.SIPAddr() == b.SIPAddr() || a.ESLAddr() == b.ESLAddr() {
		t.Fatalf("shared ports: %s %s / %s %s", a.SIPAddr(), a.ESLAddr(), b.SIPAddr(), b.ESLAddr())
	}
	if out := b.MustAPI(t, "module_exists mod_sms"); strings.TrimSpace(out) != "true" {
		t.Fatalf("module_exists mod_sms: %q", out)
	}
	// The binding follows PointChatplan: FreeSWITCH's own view of it changes.
	b.PointChatplan(t, conf.Options{HTTPAddr: "127.0.0.1:7"})
	if out := b.MustAPI(t, "xml_locate configuration configuration name xml_curl.conf"); !strings.Contains(out, "http://127.0.0.1:7/fs/chatplan") {
		t.Fatalf("xml_curl.conf after PointChatplan:\n%s", out)
	}
	ua, err := fsemu.NewUA(fsemu.UAOptions{User: "1001", Password: Password, Switch: a.SIPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ua.Register(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if c := a.Contact(t, "1001"); !strings.Contains(c, ua.Addr()) {
		t.Fatalf("contact %q, want the UA at %s", c, ua.Addr())
	}
	if c := b.Contact(t, "1001"); c != "" {
		t.Fatalf("registered with the other FreeSWITCH: %q", c)
	}
	a.FlushRegistrations(t)
	sip := a.SIPAddr()
	pid := a.PID()
	a.Restart(t)
	if a.SIPAddr() != sip || a.PID() == pid || a.PID() == 0 {
		t.Fatalf("after restart: %s pid %d (was %s pid %d)", a.SIPAddr(), a.PID(), sip, pid)
	}
}

// TestRealFSMultipleRegistrations: with multiple-registrations=contact two
// phones of one user stay registered side by side and sofia_contact lists
// both; without it (the default) the second REGISTER replaces the first.
func TestRealFSMultipleRegistrations(t *testing.T) {
	for _, c := range []struct {
		multi string
		want  int
	}{{"contact", 2}, {"", 1}} {
		t.Run("multiple-registrations="+c.multi, func(t *testing.T) {
			f := Start(t, Options{MultipleRegistrations: c.multi})
			var addrs []string
			for range 2 {
				ua, err := fsemu.NewUA(fsemu.UAOptions{User: "1001", Password: Password, Switch: f.SIPAddr()})
				if err != nil {
					t.Fatal(err)
				}
				defer ua.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err = ua.Register(ctx, time.Hour)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				addrs = append(addrs, ua.Addr())
			}
			regs := f.WaitRegistrations(t, "1001", c.want, 5*time.Second)
			contacts := f.Contact(t, "1001")
			if n := strings.Count(contacts, "sofia/internal/sip:1001@"); n != c.want {
				t.Fatalf("sofia_contact %q: %d contacts, want %d", contacts, n, c.want)
			}
			last := addrs[len(addrs)-1] // the last REGISTER always stays
			if !strings.Contains(contacts, last) {
				t.Fatalf("sofia_contact %q lacks the last phone %s", contacts, last)
			}
			for _, r := range regs {
				if !strings.Contains(r.Contact, "<sip:1001@127.0.0.1:") || r.CallID == "" || r.Agent != "fsemu-ua/1.0" {
					t.Fatalf("registration %+v", r)
				}
			}
		})
	}
}
