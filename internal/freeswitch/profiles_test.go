package freeswitch

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/fsreal"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// Which profiles keep one registration per user, as sofia.c reads
// multiple-registrations: "contact" or a true value keep several, anything else
// (or nothing) one; the last param wins; profiles not asked for, or a document
// that is not sofia.conf, say nothing.
func TestSoleProfiles(t *testing.T) {
	doc := `<configuration name="sofia.conf"><profiles>
<profile name="internal"><settings><param name="multiple-registrations" value="contact"/></settings></profile>
<profile name="plain"><settings><param name="sip-port" value="5070"/></settings></profile>
<profile name="yes"><settings><param name="Multiple-Registrations" value="false"/><param name="multiple-registrations" value="true"/></settings></profile>
<profile name="off"><settings><param name="multiple-registrations" value="false"/></settings></profile>
<profile name="other"><settings/></profile>
</profiles></configuration>`
	got := soleProfiles(doc, []string{"internal", "plain", "yes", "off", "missing"})
	want := map[string]bool{"internal": false, "plain": true, "yes": false, "off": true}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for p, s := range want {
		if v, ok := got[p]; !ok || v != s {
			t.Fatalf("%v, want %v", got, want)
		}
	}
	if got := soleProfiles("can't find anything\n", []string{"internal"}); len(got) != 0 {
		t.Fatalf("not sofia.conf: %v", got)
	}
}

// On FreeSWITCH 1.10.12, through the Router: with the fixture's profile (no
// multiple-registrations) a second phone's REGISTER replaces the first one's row,
// and presence keeps one device for the user, now at the second phone's contact;
// with multiple-registrations=contact both are devices.
func TestRealFSRegistrationsPerProfile(t *testing.T) {
	if err := fsreal.Available(); err != nil {
		t.Skip(err)
	}
	for _, c := range []struct {
		name  string
		files []conf.File
		want  int
	}{{"default", nil, 1}, {"contact", []conf.File{multiRegContact}, 2}} {
		t.Run(c.name, func(t *testing.T) {
			fs := fsreal.Start(t, fsreal.Options{Files: c.files})
			store, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close(context.Background()) })
			m, err := presence.New(presence.Config{Store: store})
			if err != nil {
				t.Fatal(err)
			}
			client := esl.New(esl.Config{Addr: fs.ESLAddr(), Password: fs.ESLPassword(),
				BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
			rec := &recorder{}
			r := NewRouter(RouterConfig{Client: client, Presence: m, Bodies: rec, Delivery: rec,
				Profiles: []string{"internal"}, Logger: slog.New(slog.DiscardHandler)})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { _ = client.Run(ctx) })
			wg.Go(func() { _ = r.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()
			waitCalls(t, rec, "first resync", func(c []string) bool { return count(c, "wake all") == 1 })

			const aor = "1001@" + fsreal.Domain
			var last *fsemu.UA
			for range 2 {
				ua, err := fsemu.NewUA(fsemu.UAOptions{User: "1001", Password: fsreal.Password, Switch: fs.SIPAddr()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ua.Close() })
				rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
				err = ua.Register(rctx, time.Hour)
				rcancel()
				if err != nil {
					t.Fatal(err)
				}
				last = ua
				lastContact := "sip:1001@" + ua.Addr()
				waitFor(t, "the REGISTER applied", func() bool {
					for _, d := range m.Devices(aor) {
						if d.Registered && d.Contact != "" && strings.Contains(d.Contact, lastContact) {
							return true
						}
					}
					return false
				})
			}
			ds := m.Devices(aor)
			if len(ds) != c.want {
				t.Fatalf("%d devices, want %d: %+v", len(ds), c.want, ds)
			}
			if c.want == 1 {
				to, ok := m.ChatTo(aor, ds[0].Key)
				if !ok || !strings.Contains(to, last.Addr()) {
					t.Fatalf("the one device's chat destination %q %v is not the last phone %s", to, ok, last.Addr())
				}
			}
		})
	}
}
