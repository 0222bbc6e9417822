//go:build eslgodefects

// These tests record why package esl does not wrap eslgo v1.5.0 (doc.go). They
// pass while the defects are there; run them again before reconsidering eslgo:
//
//	go test -tags eslgodefects -run Eslgo -v ./esl/
//
// Run them without -race: with it, every Close of an inbound eslgo connection is
// reported as a data race inside eslgo (close deletes from responseChannels,
// connection.go:197, while authLoop reads that map without the lock,
// inbound.go:93), which would fail any -race suite built on eslgo too.
package esl

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/percipia/eslgo"
	"github.com/percipia/eslgo/command"
)

// Defect 1: even a listener that does nothing but take a number under a lock
// sees the events in another order than the socket delivered them, because eslgo
// starts a goroutine per event before any of our code runs.
func TestEslgoLosesArrivalOrder(t *testing.T) {
	const n = 2000
	s := newFakeServer(t)
	hb := findFrame(t, "esl_14_json_heartbeat_bgapi.raw", `"Event-Name":"HEARTBEAT"`)
	old := fmt.Sprintf(`"Event-Sequence":"%s"`, captureSeq(t, hb))
	s.set(func(s *fakeServer) {
		s.onEvent = func(fc *fakeConn) {
			for i := 1; i <= n; i++ {
				if fc.send(reframe(t, hb, old, fmt.Sprintf(`"Event-Sequence":"%d"`, i))) != nil {
					return
				}
			}
		}
	})
	opts := eslgo.DefaultInboundOptions
	opts.Logger = eslgo.NilLogger{}
	conn, err := opts.Dial(s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan uint64, n)
	conn.RegisterEventListener(eslgo.EventListenAll, func(ev *eslgo.Event) {
		e, err := ParseJSON(ev.Body)
		if err == nil {
			got <- e.Sequence
		}
	})
	if _, err := conn.SendCommand(t.Context(), command.Event{Format: "json", Listen: []string{"HEARTBEAT"}}); err != nil {
		t.Fatal(err)
	}
	inversions := 0
	var prev uint64
	for range n {
		select {
		case seq := <-got:
			if seq < prev {
				inversions++
			}
			prev = seq
		case <-time.After(5 * time.Second):
			t.Fatal("events missing")
		}
	}
	t.Logf("%d of %d events reached the listener after a later one", inversions, n)
	if inversions == 0 {
		t.Error("eslgo kept the order this time; defect 1 may be fixed")
	}
}

// Defect 6: Dial against a peer that accepts and stays silent does not return,
// and nothing we hold can end it; only the peer speaking can.
func TestEslgoDialHangsOnSilentPeer(t *testing.T) {
	s := newFakeServer(t)
	speak := make(chan struct{})
	s.set(func(s *fakeServer) {
		s.serve = func(fc *fakeConn) {
			<-speak
			fc.serveStd()
		}
	})
	done := make(chan *eslgo.Conn, 1)
	go func() {
		opts := eslgo.DefaultInboundOptions
		opts.Logger = eslgo.NilLogger{}
		opts.AuthTimeout = 50 * time.Millisecond // covers only the reply to auth
		c, _ := opts.Dial(s.addr())
		done <- c
	}()
	select {
	case <-done:
		t.Fatal("Dial returned against a silent peer; defect 6 may be fixed")
	case <-time.After(time.Second):
	}
	var buf [1 << 16]byte
	n := runtimeStack(buf[:])
	if !strings.Contains(n, "eslgo.InboundOptions.Dial") {
		t.Errorf("no goroutine in eslgo Dial:\n%s", n)
	}
	close(speak) // let it finish so that goleak sees a clean exit
	if c := <-done; c != nil {
		c.Close()
	}
}

func runtimeStack(buf []byte) string { return string(buf[:runtime.Stack(buf, true)]) }
