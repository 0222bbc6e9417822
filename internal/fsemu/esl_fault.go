package fsemu

import (
	"net"
	"time"
)

// Fault injection for reconnect and timeout tests.

// DropConnections closes every client socket at once, with no disconnect
// notice: what a client sees when FreeSWITCH crashes or the network breaks.
// The listener keeps accepting.
func (s *ESLServer) DropConnections() {
	s.mu.Lock()
	conns := make([]*eslConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	for nc := range s.silent {
		nc.Close()
	}
	s.silent = map[net.Conn]struct{}{}
	s.mu.Unlock()
	for _, c := range conns {
		c.kill("")
	}
}

// Restart emulates a FreeSWITCH restart: connections are dropped,
// Event-Sequence starts again from 0 and events carry newCoreUUID (a random
// one if empty). The uptime in HEARTBEAT restarts too.
//
// The new identity is in place before the connections drop: a client that
// reconnects at once must meet the restarted FreeSWITCH, never the old one
// again (the real one is down for seconds in between).
func (s *ESLServer) Restart(newCoreUUID string) {
	s.mu.Lock()
	s.coreUUID = or(newCoreUUID, newUUID())
	s.epoch++
	s.seq = 0
	s.started = s.opts.Clock()
	s.mu.Unlock()
	s.DropConnections()
}

// SetAcceptSilent makes new connections be accepted but never greeted with
// auth/request (a client waiting for it hangs). Existing connections are
// not affected.
func (s *ESLServer) SetAcceptSilent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noAuth = on
}

// SetAPIDelay delays every `api` reply by d (bgapi results too). Like
// FreeSWITCH, which runs `api` in the connection's own thread, no event is
// written to that connection meanwhile.
func (s *ESLServer) SetAPIDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiDelay = d
}

func (s *ESLServer) delay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiDelay
}

// SetEventLoss makes every event for which lost returns true vanish instead of
// reaching the connections, as when an ESL connection drops around it or
// sipsilo is down; nil delivers every event again.
func (s *ESLServer) SetEventLoss(lost func(ev *Event) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost = lost
}
