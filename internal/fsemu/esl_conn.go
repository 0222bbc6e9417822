package fsemu

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// disconnectText is what listener_run sends in its final disconnect notice.
const disconnectText = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

// packet is one client command as read_packet builds it: the first line is
// the command, later "Name: value" lines are headers kept verbatim, and a
// Content-Length header pulls that many bytes in as the body.
type packet struct {
	cmd     string
	headers []Header
	body    string
}

func (p *packet) header(name string) (string, bool) {
	for _, h := range p.headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// eslConn is one inbound listener. run is its only writer, so replies and
// events never interleave; events are written only between commands, as
// read_packet flushes the queue only while it waits for input.
type eslConn struct {
	srv  *ESLServer
	nc   net.Conn
	dead chan struct{} // closed by kill
	once sync.Once
	wmu  sync.Mutex // one frame at a time on the socket

	mu      sync.Mutex
	authed  bool
	logging bool            // LFLAG_LOG; no log lines are ever produced
	events  bool            // LFLAG_EVENTS
	format  string          // plain or json (xml is accepted, sent as plain)
	list    map[string]bool // event_list, by canonical name
	subs    map[string]bool // event_hash: CUSTOM subclasses, case-sensitive
	filters []Header
	queue   []*Event
	wake    chan struct{}
}

func newESLConn(s *ESLServer, nc net.Conn) *eslConn {
	return &eslConn{
		srv: s, nc: nc, dead: make(chan struct{}), format: FormatPlain,
		list: map[string]bool{}, subs: map[string]bool{}, wake: make(chan struct{}, 1),
	}
}

// kill closes the socket; run notices and exits. A non-empty notice is
// sent first as a disconnect notice, as kill_listener does on shutdown. The
// deadline comes before taking wmu so that a write stuck on a client that
// does not read gives up instead of blocking the kill.
func (c *eslConn) kill(notice string) {
	c.once.Do(func() {
		close(c.dead)
		if notice != "" {
			c.nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			c.wmu.Lock()
			io.WriteString(c.nc, noticeFrame(notice))
			c.wmu.Unlock()
		}
		c.nc.Close()
	})
}

// noticeFrame is send_disconnect's frame for an inbound listener.
func noticeFrame(text string) string {
	return "Content-Type: text/disconnect-notice\nContent-Length: " + strconv.Itoa(len(text)) + "\n\n" + text
}

// run is listener_run: greet, then read and answer commands until exit,
// failed auth, a read error or kill.
func (c *eslConn) run() {
	defer c.srv.wg.Done()
	defer c.srv.remove(c)
	defer c.kill("")

	packets := make(chan *packet)
	c.srv.wg.Add(1)
	go c.readLoop(packets)

	if !c.write("Content-Type: auth/request\n\n") {
		return
	}
	authTimer := time.NewTimer(c.srv.opts.AuthTimeout)
	defer authTimer.Stop()
	first := true
	for {
		var timeout <-chan time.Time
		if first {
			timeout = authTimer.C
		}
		select {
		case <-c.dead:
			return
		case <-timeout:
			// read_packet(listener, &event, 25) gave up: straight to the
			// disconnect notice.
			c.disconnect()
			return
		case <-c.wake:
			if !c.flush() {
				return
			}
		case p, ok := <-packets:
			if !ok {
				// A read error ends listener_run the normal way, so the
				// notice is still attempted (it reaches a client that only
				// shut down its writing side).
				c.disconnect()
				return
			}
			first = false
			// Events queued before the command arrived go first: read_packet
			// flushes the queue on every pass while no input is pending.
			if !c.flush() {
				return
			}
			reply, keep := c.command(p)
			if reply != "" {
				if !c.writeReply(reply) {
					return
				}
			}
			if !keep {
				c.disconnect()
				return
			}
		}
	}
}

// readLoop feeds run with packets until the socket fails.
func (c *eslConn) readLoop(out chan<- *packet) {
	defer c.srv.wg.Done()
	defer close(out)
	r := bufio.NewReader(c.nc)
	for {
		p, err := readPacket(r)
		if err != nil {
			return
		}
		select {
		case out <- p:
		case <-c.dead:
			return
		}
	}
}

// readPacket reproduces read_packet's framing: CR and LF before a command
// are skipped, a packet ends at the second LF with only CRs between, each
// line is cut at its first CR or LF (strip_cr), a header's value starts
// after the colon and any spaces, lines without a colon are ignored.
func readPacket(r *bufio.Reader) (*packet, error) {
	for {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if b != '\r' && b != '\n' {
			if err := r.UnreadByte(); err != nil {
				return nil, err
			}
			break
		}
	}
	p := &packet{}
	clen := 0
	for n := 0; ; n++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if n > 0 && strings.Trim(line, "\r\n") == "" {
			break
		}
		if i := strings.IndexAny(line, "\r\n"); i >= 0 {
			line = line[:i]
		}
		if n == 0 {
			p.cmd = line
			continue
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			continue
		}
		val = strings.TrimLeft(val, " ")
		p.headers = append(p.headers, Header{name, val})
		if strings.EqualFold(name, "content-length") && clen == 0 {
			clen, _ = strconv.Atoi(val)
		}
	}
	// The body follows the blank line; FreeSWITCH reads it when it meets
	// the Content-Length header, i.e. after the whole header block.
	if clen > 0 {
		buf := make([]byte, clen)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		p.body = cString(string(buf))
	}
	return p, nil
}

func (c *eslConn) write(s string) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.dead: // nothing may follow a kill notice
		return false
	default:
	}
	_, err := io.WriteString(c.nc, s)
	return err == nil
}

// writeReply sends a command/reply; a reply starting with '~' carries its
// own header lines (bgapi), as in listener_run.
func (c *eslConn) writeReply(reply string) bool {
	if rest, ok := strings.CutPrefix(reply, "~"); ok {
		return c.write("Content-Type: command/reply\n" + rest)
	}
	return c.write("Content-Type: command/reply\nReply-Text: " + reply + "\n\n")
}

func (c *eslConn) disconnect() {
	c.write(noticeFrame(disconnectText))
}

// offer is event_handler for this listener: queue a copy if subscribed and
// the filters let it through.
func (c *eslConn) offer(ev *Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.events || !c.wants(ev) || !c.passes(ev) {
		return
	}
	c.queue = append(c.queue, ev.Clone())
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// wants is the subscription test of event_handler: ALL takes everything;
// otherwise the event type must be listed and a CUSTOM event with a
// subclass also needs that exact subclass.
func (c *eslConn) wants(ev *Event) bool {
	if c.list["ALL"] {
		return true
	}
	name, ok := nameEvent(ev.Get("Event-Name"))
	if !ok || !c.list[name] {
		return false
	}
	sub, hasSub := ev.Value("Event-Subclass")
	return name != "CUSTOM" || !hasSub || c.subs[sub]
}

// flush writes every queued event in the connection's current format.
func (c *eslConn) flush() bool {
	c.mu.Lock()
	q, format := c.queue, c.format
	c.queue = nil
	c.mu.Unlock()
	for _, ev := range q {
		if !c.write(string(EventFrame(format, ev))) {
			return false
		}
	}
	return true
}
