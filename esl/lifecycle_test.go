package esl

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// droppingServer is a fake FreeSWITCH that drops the first event connection
// right after a heartbeat, with its disconnect notice (as captured); later
// connections stay up.
func droppingServer(t *testing.T) *fakeServer {
	t.Helper()
	s := newFakeServer(t)
	hb := findFrame(t, "esl_14_json_heartbeat_bgapi.raw", `"Event-Name":"HEARTBEAT"`)
	s.set(func(s *fakeServer) {
		s.onEvent = func(fc *fakeConn) {
			_ = fc.send(hb)
			if len(s.subscribers()) == 1 {
				_ = fc.send(s.w.disconnect)
				fc.nc.Close()
			}
		}
	})
	return s
}

// When FreeSWITCH drops the event socket (here after its disconnect notice, as
// captured) the client reconnects, subscribes again, and says so with the new
// Core-UUID; events of both connections arrive in order.
func TestReconnectAfterDrop(t *testing.T) {
	s := droppingServer(t)
	c, _ := startClient(t, Config{Addr: s.addr()})
	if got := nextConnected(t, c); got != (Connected{CoreUUID: "core-1", Count: 1}) {
		t.Errorf("first Connected=%+v", got)
	}
	if e := nextEvent(t, c); e.Name != "HEARTBEAT" {
		t.Fatalf("got %s", e.Name)
	}
	// FreeSWITCH "restarts" while the client is away.
	s.set(func(s *fakeServer) { s.core = "core-2" })
	if got := nextConnected(t, c); got != (Connected{CoreUUID: "core-2", Restarted: true, Count: 2}) {
		t.Errorf("second Connected=%+v", got)
	}
	if e := nextEvent(t, c); e.Name != "HEARTBEAT" {
		t.Fatalf("got %s", e.Name)
	}
	subs := s.subscribers()
	if len(subs) != 2 {
		t.Fatalf("%d subscriptions, want 2", len(subs))
	}
	if a, b := subs[0].commands(), subs[1].commands(); strings.Join(a, "|") != strings.Join(b, "|") {
		t.Errorf("resubscription %q differs from %q", b, a)
	}
	// BgAPI works on the new connection pair.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if got, err := c.BgAPI(ctx, "chat", "x", "job-after-reconnect"); err != nil || got != "Sent" {
		t.Errorf("BgAPI after reconnect=%q, %v", got, err)
	}
}

// A peer that accepts and never speaks (FreeSWITCH starting up, a dead port
// forward) costs a DialTimeout per attempt and nothing else: Run keeps retrying
// with backoff and returns promptly on cancel; goleak checks nothing is left.
func TestSilentPeerDoesNotHang(t *testing.T) {
	s := newFakeServer(t)
	s.set(func(s *fakeServer) {
		s.serve = func(fc *fakeConn) { <-s.quit }
	})
	c, stop := startClient(t, Config{Addr: s.addr(), DialTimeout: 50 * time.Millisecond})
	waitFor(t, "several attempts", func() bool { return len(s.connections()) >= 6 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.API(ctx, "status"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("API while down: %v, want ErrNotConnected", err)
	}
	if _, err := c.BgAPI(ctx, "chat", "x", "j"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("BgAPI while down: %v, want ErrNotConnected", err)
	}
	start := time.Now()
	stop()
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Run took %v to stop", took)
	}
	// Every socket the client opened is closed: the server reads EOF on each.
	for _, fc := range s.connections() {
		_ = fc.nc.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := fc.br.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("client left a socket open: %v", err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A connection that stops sending (no HEARTBEAT) while the socket stays open is
// closed and replaced after HeartbeatTimeout: eslgo would keep such a zombie.
func TestHeartbeatWatchdogReconnects(t *testing.T) {
	s := newFakeServer(t)
	c, _ := startClient(t, Config{Addr: s.addr(), HeartbeatTimeout: 200 * time.Millisecond})
	first := nextConnected(t, c)
	start := time.Now()
	second := nextConnected(t, c)
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("reconnected after %v, before the heartbeat timeout", took)
	}
	if first.Count != 1 || second.Count != 2 || second.Restarted {
		t.Errorf("Connected %+v then %+v", first, second)
	}
}

// Heartbeats keep a connection alive.
func TestHeartbeatsKeepConnection(t *testing.T) {
	s := newFakeServer(t)
	hb := findFrame(t, "esl_14_json_heartbeat_bgapi.raw", `"Event-Name":"HEARTBEAT"`)
	s.set(func(s *fakeServer) {
		s.onEvent = func(fc *fakeConn) {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					if fc.send(hb) != nil {
						return
					}
				case <-s.quit:
					return
				}
			}
		}
	})
	c, _ := startClient(t, Config{Addr: s.addr(), HeartbeatTimeout: 200 * time.Millisecond})
	nextConnected(t, c)
	deadline := time.After(600 * time.Millisecond)
	for {
		select {
		case <-c.Events():
		case v := <-c.Connected():
			t.Fatalf("reconnected (%+v) although heartbeats kept coming", v)
		case <-deadline:
			return
		}
	}
}

// Cancelling Run stops everything even while the consumer is not reading and
// the event connection is blocked handing over an event, and while a caller
// waits in API.
func TestCancelWithBlockedConsumer(t *testing.T) {
	s := newFakeServer(t)
	hb := findFrame(t, "esl_14_json_heartbeat_bgapi.raw", `"Event-Name":"HEARTBEAT"`)
	var sent atomic.Int64
	s.set(func(s *fakeServer) {
		s.onEvent = func(fc *fakeConn) {
			for fc.send(hb) == nil {
				sent.Add(1)
			}
		}
		s.api = func(cmd string) []byte {
			<-s.quit
			return nil
		}
	})
	c, stop := startClient(t, Config{Addr: s.addr()})
	waitFor(t, "the event buffer to fill", func() bool { return sent.Load() > int64(cap(c.events))+10 })
	apiErr := make(chan error, 1)
	go func() {
		_, err := c.API(context.Background(), "hangs")
		apiErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	stop()
	select {
	case err := <-apiErr:
		if err == nil {
			t.Error("API succeeded")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("API still waiting after Run returned")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {Addr: "127.0.0.1:1", Subscription: "event json A\nevent json B"}} {
		if err := New(cfg).Run(context.Background()); err == nil {
			t.Errorf("Run(%+v) succeeded", cfg)
		}
	}
}
