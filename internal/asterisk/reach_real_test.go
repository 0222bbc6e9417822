package asterisk

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/astreal"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/presence"
)

// recorder is a Presence that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	all []presence.Event
	ch  chan presence.Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan presence.Event, 1024)} }

func (r *recorder) ApplyEvent(_ context.Context, ev presence.Event) error {
	r.mu.Lock()
	r.all = append(r.all, ev)
	r.mu.Unlock()
	r.ch <- ev
	return nil
}

// next returns the next event, failing after 10 s.
func (r *recorder) next(t *testing.T) presence.Event {
	t.Helper()
	select {
	case ev := <-r.ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no presence event within 10 s")
	}
	return presence.Event{}
}

// wait returns the first event that matches, failing after within.
func (r *recorder) wait(t *testing.T, within time.Duration, what string, match func(presence.Event) bool) presence.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-r.ch:
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, within)
		}
	}
}

// amiTarget is where startReach connects.
type amiTarget interface {
	AMIAddr() string
	AMISecret() string
}

// astAt is an Asterisk reached through another address (a proxy).
type astAt struct {
	*astreal.Ast
	addr string
}

func (a *astAt) AMIAddr() string { return a.addr }

// startReach runs a Client and a Reach against a.
func startReach(t *testing.T, a amiTarget, p Presence) (*Client, *Reach) {
	t.Helper()
	var r *Reach
	c := New(Config{Addr: a.AMIAddr(), User: astreal.AMIUser, Secret: a.AMISecret(), Events: true,
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		OnEvent:   func(s string, ev Message) { r.OnEvent(s, ev) },
		OnConnect: func(ctx context.Context, s string) { r.OnConnect(ctx, s) }})
	r = NewReach(ReachConfig{AMI: c, Presence: p, Domain: "127.0.0.1"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.Run(ctx) }()
	go func() { defer wg.Done(); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return c, r
}

func newUA(t *testing.T, a *astreal.Ast, user string) *fsemu.UA {
	t.Helper()
	ua, err := fsemu.NewUA(fsemu.UAOptions{User: user, Password: astreal.Password, Switch: a.SIPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	return ua
}

func sipCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestReachOnTheRealAsterisk: a registration made before sipsilo connected
// comes from the contact list at connect (AMI replays nothing); a new one
// from ContactStatus plus the list, with its Call-ID and expiry; a phone that
// stops answering Asterisk's qualify OPTIONS turns unreachable and back; an
// unregister removes the registration by its Call-ID.
func TestReachOnTheRealAsterisk(t *testing.T) {
	a := astreal.Start(t, astreal.Options{})
	early := newUA(t, a, "1002")
	if err := early.Register(sipCtx(t), 120*time.Second); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	_, reach := startReach(t, a, rec)
	isReg := func(aor string) func(presence.Event) bool {
		return func(ev presence.Event) bool { return ev.Kind == presence.Registered && ev.AOR == aor }
	}
	ev := rec.wait(t, 10*time.Second, "registration from the list at connect", isReg("1002@127.0.0.1"))
	if !strings.Contains(ev.Contact, early.Addr()) || ev.CallID == "" || ev.ExpiresIn < 100*time.Second ||
		ev.ExpiresIn > 200*time.Second || ev.Stream == "" || ev.Seq == 0 {
		t.Fatalf("listed registration %+v", ev)
	}

	bob := newUA(t, a, "1001")
	if err := bob.Register(sipCtx(t), 120*time.Second); err != nil {
		t.Fatal(err)
	}
	reg := rec.wait(t, 10*time.Second, "registration of 1001", isReg("1001@127.0.0.1"))
	if !strings.Contains(reg.Contact, bob.Addr()) || !strings.HasSuffix(reg.CallID, "@fsemu") || reg.NetworkPort == 0 {
		t.Fatalf("registration %+v", reg)
	}
	reachOf := func(want presence.Reach) func(presence.Event) bool {
		return func(ev presence.Event) bool {
			return ev.Kind == presence.ReachChanged && ev.AOR == "1001@127.0.0.1" && ev.Reach == want && ev.CallID == reg.CallID
		}
	}
	rec.wait(t, 10*time.Second, "reachable", reachOf(presence.Reachable))

	bob.SetSilent(true)
	silent := time.Now()
	rec.wait(t, 30*time.Second, "unreachable after the phone went silent", reachOf(presence.Unreachable))
	t.Logf("silent phone reported unreachable after %v (qualify_frequency 5)", time.Since(silent).Round(time.Millisecond))
	bob.SetSilent(false)
	rec.wait(t, 30*time.Second, "reachable again", reachOf(presence.Reachable))

	if err := bob.Unregister(sipCtx(t)); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, 10*time.Second, "removal", func(ev presence.Event) bool {
		return ev.Kind == presence.Removed && ev.AOR == "1001@127.0.0.1" && ev.CallID == reg.CallID
	})
	if reach.Resyncs.Load() < 2 || reach.Dropped.Load() != 0 {
		t.Fatalf("resyncs %d, dropped %d", reach.Resyncs.Load(), reach.Dropped.Load())
	}
}

// TestReachResyncsAfterReconnect: while sipsilo's AMI connection is cut, a
// phone unregisters and another registers; the list read at the new
// connection removes the one and adds the other.
func TestReachResyncsAfterReconnect(t *testing.T) {
	a := astreal.Start(t, astreal.Options{})
	px := newProxy(t, a.AMIAddr())
	rec := newRecorder()
	c, _ := startReach(t, &astAt{a, px.addr()}, rec)
	bob, carol := newUA(t, a, "1001"), newUA(t, a, "1003")
	if err := bob.Register(sipCtx(t), 120*time.Second); err != nil {
		t.Fatal(err)
	}
	reg := rec.wait(t, 10*time.Second, "registration", func(ev presence.Event) bool { return ev.Kind == presence.Registered })
	px.cut()
	for c.Connected() {
		time.Sleep(10 * time.Millisecond)
	}
	if err := bob.Unregister(sipCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := carol.Register(sipCtx(t), 120*time.Second); err != nil {
		t.Fatal(err)
	}
	px.heal()
	var removed, added bool
	rec.wait(t, 10*time.Second, "removal of 1001 and registration of 1003 from the list at reconnect", func(ev presence.Event) bool {
		removed = removed || ev.Kind == presence.Removed && ev.CallID == reg.CallID && ev.AOR == "1001@127.0.0.1"
		added = added || ev.Kind == presence.Registered && ev.AOR == "1003@127.0.0.1"
		return removed && added
	})
}
