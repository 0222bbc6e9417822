package fsemu

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// ESLOptions configure an ESLServer. Zero values take FreeSWITCH's defaults
// or the values seen in the recordings.
type ESLOptions struct {
	Addr       string // listen address; default 127.0.0.1:0
	Password   string // default "ClueCon" (event_socket.conf default)
	CoreUUID   string // default: a random UUID
	Hostname   string // FreeSWITCH-Hostname; default "vm"
	Switchname string // default Hostname
	IPv4, IPv6 string // default 192.0.2.2 and fd00::2, as captured

	// HeartbeatInterval fires HEARTBEAT this often; 0 turns it off
	// (FreeSWITCH's own interval is 20 s).
	HeartbeatInterval time.Duration
	// AuthTimeout is how long a new connection may take to send its first
	// packet before it is disconnected (FreeSWITCH: 25 s). 0 means 25 s.
	AuthTimeout time.Duration
	// Clock gives the event timestamps and the uptime; default time.Now.
	Clock func() time.Time
	// Uptime, if set, replaces Clock()-start as HEARTBEAT's uptime
	// (FreeSWITCH measures it on another clock than the timestamps).
	Uptime func() time.Duration
}

// ESLServer emulates mod_event_socket's inbound listener on 127.0.0.1.
// Every goroutine it starts is tracked and Close waits for all of them.
type ESLServer struct {
	opts ESLOptions
	ln   net.Listener
	wg   sync.WaitGroup
	done chan struct{}

	mu       sync.Mutex
	conns    map[*eslConn]struct{}
	silent   map[net.Conn]struct{}
	apis     map[string]func(args string) string
	ordered  map[string]func(args string, started func()) string
	bgPrev   chan struct{} // closed when the last bgapi job has started
	coreUUID string
	seq      uint64
	started  time.Time
	closed   bool
	noAuth   bool
	apiDelay time.Duration
	lost     func(ev *Event) bool // SetEventLoss
	epoch    uint64               // counts Restarts; a bgapi job of an older epoch is forgotten

	onSendEvent func(*Event)
}

// NewESLServer listens on 127.0.0.1:0 and starts accepting.
func NewESLServer(opts ESLOptions) (*ESLServer, error) {
	if opts.Password == "" {
		opts.Password = "ClueCon"
	}
	opts.Hostname = or(opts.Hostname, "vm")
	opts.Switchname = or(opts.Switchname, opts.Hostname)
	opts.IPv4 = or(opts.IPv4, "192.0.2.2")
	opts.IPv6 = or(opts.IPv6, "fd00::2")
	if opts.AuthTimeout <= 0 {
		opts.AuthTimeout = 25 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	ln, err := net.Listen("tcp", or(opts.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, err
	}
	s := &ESLServer{
		opts:     opts,
		ln:       ln,
		done:     make(chan struct{}),
		conns:    map[*eslConn]struct{}{},
		silent:   map[net.Conn]struct{}{},
		apis:     map[string]func(string) string{},
		ordered:  map[string]func(string, func()) string{},
		bgPrev:   closedChan(),
		coreUUID: or(opts.CoreUUID, newUUID()),
		started:  opts.Clock(),
	}
	// FreeSWITCH's core sets the global variable core_uuid at start
	// (switch_core_init); clients read it to tell a restarted FreeSWITCH apart.
	s.HandleAPI("global_getvar", func(args string) string {
		if stripWhitespace(args) == "core_uuid" {
			return s.CoreUUID()
		}
		return ""
	})
	s.wg.Add(1)
	go s.acceptLoop()
	if opts.HeartbeatInterval > 0 {
		s.wg.Add(1)
		go s.heartbeatLoop(opts.HeartbeatInterval)
	}
	return s, nil
}

// Addr is the listening address, host:port.
func (s *ESLServer) Addr() string { return s.ln.Addr().String() }

// CoreUUID is the Core-UUID events currently carry.
func (s *ESLServer) CoreUUID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.coreUUID
}

// shutdownText is the notice kill_all_listeners sends when FreeSWITCH (or
// mod_event_socket) shuts down.
const shutdownText = "The system is being shut down.\n"

// Close stops listening, sends every client the shutdown disconnect notice
// FreeSWITCH sends on a clean shutdown, closes the connections and waits
// for all goroutines, including running bgapi jobs (so API handlers must
// return).
func (s *ESLServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	err := s.ln.Close()
	conns := s.connections()
	for _, c := range conns {
		c.kill(shutdownText)
	}
	s.DropConnections() // silent ones, and any that raced in
	s.wg.Wait()
	return err
}

// HandleAPI registers the handler for `api name …` and `bgapi name …`. API
// names are matched case-insensitively, like FreeSWITCH's API hash. The
// handler gets the argument after switch_api_execute's whitespace strip;
// its return value is the whole reply. `api` runs it on the connection's
// goroutine (nothing else happens on that connection meanwhile, as in
// FreeSWITCH), `bgapi` on a job goroutine, so handlers may run concurrently.
func (s *ESLServer) HandleAPI(name string, fn func(args string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apis[strings.ToLower(name)] = fn
}

// HandleOrderedAPI is HandleAPI for a command whose bgapi jobs must start in
// the order they arrived: fn calls started once its side effect is under way
// (chat: the SIP MESSAGE is sent), and the next job waits for that. FreeSWITCH
// starts a thread per bgapi job in arrival order, and 300 back-to-back `bgapi
// chat` reached the phone with 0 inversions (docs/decisions.md
// §18); goroutines started in a burst run in no such order (Go's scheduler
// runs the newest first), so without this the emulator would reorder what
// FreeSWITCH does not.
func (s *ESLServer) HandleOrderedAPI(name string, fn func(args string, started func()) string) {
	s.HandleAPI(name, func(args string) string { return fn(args, func() {}) })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ordered[strings.ToLower(name)] = fn
}

func (s *ESLServer) orderedAPI(name string) func(string, func()) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ordered[strings.ToLower(stripWhitespace(name))]
}

// HandleSendEvent registers fn to see every event a client fires with
// `sendevent` (after it went to the subscribers), so a test can emulate the
// module that would consume it (mod_sms, sofia). fn runs on the client's
// connection goroutine, before the +OK reply is written.
func (s *ESLServer) HandleSendEvent(fn func(ev *Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onSendEvent = fn
}

func (s *ESLServer) identity() identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return identity{s.coreUUID, s.opts.Hostname, s.opts.Switchname, s.opts.IPv4, s.opts.IPv6}
}

func (s *ESLServer) api(name string) func(string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apis[strings.ToLower(stripWhitespace(name))]
}

// NextSequence takes the next Event-Sequence number, for callers that build
// an event themselves (NewMessageEvent) but want it in this switch's order.
func (s *ESLServer) NextSequence() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// Fire completes ev with the standard headers (see prepare: an event that
// already has Event-Sequence is sent as it is) and queues it on every
// connection subscribed to it, as mod_event_socket's event_handler does. It
// returns the event as sent. It panics on an event without Event-Name, a
// bug in the test.
func (s *ESLServer) Fire(ev *Event) *Event {
	out, err := prepare(ev, s.identity(), s.opts.Clock(), s.NextSequence)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	lost := s.lost
	s.mu.Unlock()
	if lost != nil && lost(out) {
		return out
	}
	conns := s.connections()
	for _, c := range conns {
		c.offer(out)
	}
	return out
}

// FireHeartbeat fires one HEARTBEAT now, as the heartbeat timer does.
func (s *ESLServer) FireHeartbeat() *Event {
	s.mu.Lock()
	up := s.opts.Clock().Sub(s.started)
	s.mu.Unlock()
	if s.opts.Uptime != nil {
		up = s.opts.Uptime()
	}
	return s.Fire(heartbeatEvent(up))
}

func (s *ESLServer) heartbeatLoop(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.FireHeartbeat()
		}
	}
}

func (s *ESLServer) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		switch {
		case s.closed:
			nc.Close()
		case s.noAuth:
			// Held open, never greeted: only DropConnections/Close end it.
			s.silent[nc] = struct{}{}
		default:
			c := newESLConn(s, nc)
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			go c.run()
		}
		s.mu.Unlock()
	}
}

func (s *ESLServer) remove(c *eslConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// newUUID is a random version-4 UUID in switch_uuid_format's lowercase form.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// connections is a snapshot of the authenticated connections, taken so that
// writing to them happens outside the lock.
func (s *ESLServer) connections() []*eslConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*eslConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
