package esl

import (
	"net"
	"testing"
)

// Stats counts each connection made and each dial that failed: a dropped event
// connection shows as a second event connect, the command connection's first
// stays its only one.
func TestStatsCountConnectsAndDialFailures(t *testing.T) {
	s := droppingServer(t)
	c, _ := startClient(t, Config{Addr: s.addr()})
	nextConnected(t, c)
	nextConnected(t, c) // after the drop
	waitFor(t, "both connections up", c.Up)
	st := c.Stats()
	if st.EventConnects != 2 || st.CommandConnects != 1 || !st.Up {
		t.Fatalf("stats %+v, want 2 event connects, 1 command connect, up", st)
	}
	if st.EventDialFailures != 0 || st.CommandDialFailures != 0 {
		t.Fatalf("stats %+v: dial failures against a server that answers", st)
	}

	// Nothing listens here: every attempt fails, and is counted.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	down, _ := startClient(t, Config{Addr: addr})
	waitFor(t, "failed dials counted", func() bool {
		st := down.Stats()
		return st.EventDialFailures >= 2 && st.CommandDialFailures >= 2
	})
	if st := down.Stats(); st.EventConnects != 0 || st.CommandConnects != 0 || st.Up {
		t.Fatalf("stats %+v with nothing listening", st)
	}
}
