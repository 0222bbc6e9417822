package freeswitch

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// Two phones of one user registered on the emulator, through the event socket,
// the Router and the translation into a real presence map: one phone's
// un-REGISTER ends that device only, whether or not the switch also fires the
// per-user PRESENCE_IN Unregistered (it does for the captured default profile,
// not with multiple-registrations=contact), and the ended device stays a target.
func TestRouterKeepsOtherDevicesOnUnregister(t *testing.T) {
	for _, mode := range []string{"", "contact"} {
		t.Run("multiple-registrations="+mode, func(t *testing.T) {
			sw, err := fsemu.NewSwitch(fsemu.SwitchOptions{MultipleRegistrations: mode})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sw.Close() })
			store, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close(context.Background()) })
			m, err := presence.New(presence.Config{Store: store})
			if err != nil {
				t.Fatal(err)
			}
			client := esl.New(esl.Config{Addr: sw.ESL().Addr(), Password: "ClueCon",
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

			const aor = "1001@127.0.0.1"
			var keys []string
			var phones []*fsemu.UA
			for range 2 {
				ua, err := fsemu.NewUA(fsemu.UAOptions{User: "1001", Password: "1234", Switch: sw.SIPAddr()})
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
				phones = append(phones, ua)
				keys = append(keys, "contact:sip:1001@"+ua.Addr())
			}
			waitFor(t, "both devices deliverable", func() bool {
				return m.DeviceDeliverable(aor, keys[0]) && m.DeviceDeliverable(aor, keys[1])
			})
			uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = phones[1].Unregister(uctx)
			ucancel()
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the second device ended", func() bool {
				ds := m.Devices(aor)
				return len(ds) == 2 && !ds[slices.IndexFunc(ds, func(d presence.Device) bool { return d.Key == keys[1] })].Registered
			})
			if !m.DeviceDeliverable(aor, keys[0]) || !m.Deliverable(aor) {
				t.Fatalf("the first device went with the second: %+v", m.Devices(aor))
			}
			got := m.Targets(aor)
			want := slices.Clone(keys)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("targets %q, want %q (the ended device is remembered)", got, want)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
