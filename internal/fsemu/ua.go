package fsemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// UAOptions configure a test UA, the Go twin of the test UA the recordings were made with.
type UAOptions struct {
	User, Password, Domain string // Domain default "127.0.0.1"
	Switch                 string // the switch's SIP address, host:port
	Logger                 *slog.Logger
	// Contact, when set, is the Contact the UA registers instead of its own
	// socket (a third-party registration, e.g. sipptest.Phone.Contact):
	// "<sip:1001@127.0.0.1:5080>" or "sip:1001@127.0.0.1:5080". The switch
	// then delivers MESSAGEs there; the UA still sends from its socket.
	Contact string
}

// Received is one MESSAGE a UA answered with a 2xx.
type Received struct {
	From, To, CallID, ContentType string
	Body                          []byte
	At                            time.Time
	// Arrival numbers the MESSAGEs in the order they reached the UA's socket
	// (from 1); Received() may hand them over in another order.
	Arrival uint64
	Header  func(name string) string // first header of that name, "" if none
}

// UA is a SIP user agent on its own UDP socket on 127.0.0.1: REGISTER and
// MESSAGE with digest auth, and it answers MESSAGE (200 or SetAnswer),
// OPTIONS and NOTIFY, like the test UA of the recordings.
type UA struct {
	opts UAOptions
	pc   *silentConn
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cl   *sipgo.Client
	wg   sync.WaitGroup

	mu      sync.Mutex
	callID  string // one Call-ID for all REGISTERs, as a phone does
	cseq    uint32
	fromTag string

	recv     chan Received
	dropped  atomic.Int64
	answer   atomic.Int32
	delay    atomic.Int64       // SetAnswerDelay, in nanoseconds
	holding  atomic.Int64       // MESSAGEs received and not answered yet (Holding)
	optionsA atomic.Int32       // SetOptionsAnswer
	contact  *sip.ContactHeader // UAOptions.Contact parsed; nil: own socket
}

// NewUA binds 127.0.0.1:0 and starts serving it.
func NewUA(opts UAOptions) (*UA, error) {
	opts.Domain = or(opts.Domain, "127.0.0.1")
	if opts.Switch == "" {
		return nil, errors.New("fsemu: UAOptions.Switch is empty")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var contact *sip.ContactHeader
	if opts.Contact != "" {
		contact = &sip.ContactHeader{Params: sip.NewParams()}
		name, err := sip.ParseAddressValue(opts.Contact, &contact.Address, &contact.Params)
		if err != nil {
			return nil, fmt.Errorf("fsemu: UAOptions.Contact %q: %w", opts.Contact, err)
		}
		contact.DisplayName = name
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sua, err := sipgo.NewUA(sipgo.WithUserAgent("fsemu-ua/1.0"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)))
	if err != nil {
		pc.Close()
		return nil, err
	}
	u := &UA{
		opts:    opts,
		pc:      &silentConn{PacketConn: pc},
		ua:      sua,
		callID:  newUUID() + "@fsemu",
		cseq:    1,
		fromTag: sip.GenerateTagN(8),
		recv:    make(chan Received, 4096),
		contact: contact,
	}
	u.answer.Store(200)
	u.optionsA.Store(200)
	u.srv, err = sipgo.NewServer(sua, sipgo.WithServerLogger(log))
	if err == nil {
		u.cl, err = sipgo.NewClient(sua, sipgo.WithClientConnectionAddr(pc.LocalAddr().String()),
			sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientLogger(log))
	}
	if err != nil {
		sua.Close()
		pc.Close()
		return nil, err
	}
	u.srv.OnMessage(u.onMessage)
	ok := func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	u.srv.OnOptions(u.onOptions)
	u.srv.OnNotify(ok)
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		_ = u.srv.ServeUDP(u.pc)
	}()
	if err := waitServing(sua, pc.LocalAddr().String()); err != nil {
		u.Close()
		return nil, err
	}
	return u, nil
}

// Addr is the UA's address, 127.0.0.1:port.
func (u *UA) Addr() string { return u.pc.LocalAddr().String() }

// Received delivers every MESSAGE the UA answered 2xx, in arrival order.
// It is buffered; when full, messages are counted in Dropped instead of
// blocking the SIP stack.
func (u *UA) Received() <-chan Received { return u.recv }

// Dropped counts messages that did not fit into Received.
func (u *UA) Dropped() int64 { return u.dropped.Load() }

// SetAnswer sets the status for incoming MESSAGEs (default 200).
func (u *UA) SetAnswer(code int) { u.answer.Store(int32(code)) }

// SetAnswerDelay makes the UA wait d before it answers each incoming MESSAGE,
// as a slow phone or a long path does, so that a test can find sends in
// flight. Zero (the default) answers at once.
func (u *UA) SetAnswerDelay(d time.Duration) { u.delay.Store(int64(d)) }

// Holding is how many MESSAGEs the UA received and has not answered yet (with
// SetAnswerDelay): sends its sender still has in flight.
func (u *UA) Holding() int { return int(u.holding.Load()) }

// SetOptionsAnswer sets the status for incoming OPTIONS (default 200), for
// phones that answer pings 404, 405 or 501.
func (u *UA) SetOptionsAnswer(code int) { u.optionsA.Store(int32(code)) }

// SetSilent makes the UA drop every incoming datagram unanswered (its port
// stays open, as with a phone that lost its network: scenario 09).
func (u *UA) SetSilent(on bool) { u.pc.silent.Store(on) }

// Close stops the UA and waits for its goroutines.
func (u *UA) Close() error {
	u.ua.Close()
	err := u.pc.Close()
	u.wg.Wait()
	return err
}

func (u *UA) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	code := int(u.optionsA.Load())
	res := sip.NewResponseFromRequest(req, code, statusReason(code), nil)
	if code == 405 {
		res.AppendHeader(sip.NewHeader("Allow", "MESSAGE, NOTIFY"))
	}
	_ = tx.Respond(res)
}

// statusReason is the reason phrase the UA gives with code.
func statusReason(code int) string {
	r := map[int]string{200: "OK", 202: "Accepted", 404: "Not Found", 405: "Method Not Allowed",
		480: "Temporarily Unavailable", 486: "Busy Here", 500: "Server Internal Error",
		501: "Not Implemented", 503: "Service Unavailable"}[code]
	if r == "" {
		r = "Status " + strconv.Itoa(code)
	}
	return r
}

func (u *UA) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	if d := time.Duration(u.delay.Load()); d > 0 {
		u.holding.Add(1)
		select {
		case <-time.After(d):
		case <-tx.Done():
			u.holding.Add(-1)
			return
		}
		defer u.holding.Add(-1) // once answered
	}
	code := int(u.answer.Load())
	reason := map[int]string{200: "OK", 202: "Accepted", 486: "Busy Here", 404: "Not Found", 480: "Temporarily Unavailable", 500: "Server Internal Error"}[code]
	if reason == "" {
		reason = "Status " + strconv.Itoa(code)
	}
	if err := tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil)); err != nil || code < 200 || code > 299 {
		return
	}
	r := Received{CallID: req.CallID().Value(), Body: append([]byte(nil), req.Body()...), At: time.Now()}
	r.Arrival = u.pc.arrival(r.CallID)
	if h := req.From(); h != nil {
		r.From = h.Value()
	}
	if h := req.To(); h != nil {
		r.To = h.Value()
	}
	if h := req.ContentType(); h != nil {
		r.ContentType = h.Value()
	}
	hs := map[string]string{}
	for _, h := range req.Headers() {
		if _, ok := hs[h.Name()]; !ok {
			hs[h.Name()] = h.Value()
		}
	}
	r.Header = func(name string) string {
		if h := req.GetHeader(name); h != nil {
			return h.Value()
		}
		return hs[name]
	}
	select {
	case u.recv <- r:
	default:
		u.dropped.Add(1)
	}
}

// request builds a request from this UA to the switch.
func (u *UA) request(method sip.RequestMethod, user string) *sip.Request {
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: user, Host: u.opts.Domain})
	req.SetTransport("UDP")
	req.SetDestination(u.opts.Switch)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: u.opts.User, Host: u.opts.Domain}}
	from.Params = sip.NewParams()
	tag := sip.GenerateTagN(8)
	if method == sip.REGISTER {
		tag = u.fromTag
	}
	from.Params.Add("tag", tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: u.opts.Domain}})
	req.AppendHeader(sip.NewHeader("User-Agent", "fsemu-ua/1.0"))
	return req
}

// do sends req and answers one 401/407 digest challenge.
func (u *UA) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := u.cl.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		req.RemoveHeader("Via")
		res, err = u.cl.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: u.opts.User, Password: u.opts.Password})
	}
	return res, err
}

// Register sends REGISTER (Contact = this socket or UAOptions.Contact,
// Expires) with digest.
func (u *UA) Register(ctx context.Context, expires time.Duration) error {
	return u.register(ctx, int(expires/time.Second))
}

// Unregister sends REGISTER with Expires: 0 on the same Call-ID.
func (u *UA) Unregister(ctx context.Context) error { return u.register(ctx, 0) }

func (u *UA) register(ctx context.Context, expires int) error {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: u.opts.Domain})
	req.SetTransport("UDP")
	req.SetDestination(u.opts.Switch)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: u.opts.User, Host: u.opts.Domain}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", u.fromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: u.opts.User, Host: u.opts.Domain}})
	callID := sip.CallIDHeader(u.callID)
	req.AppendHeader(&callID)
	u.mu.Lock()
	u.cseq += 2
	seq := u.cseq
	u.mu.Unlock()
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.REGISTER})
	req.AppendHeader(sip.NewHeader("User-Agent", "fsemu-ua/1.0"))
	if u.contact != nil {
		req.AppendHeader(u.contact.Clone())
	} else {
		host, port := splitSource(u.Addr())
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: u.opts.User, Host: host, Port: port}})
	}
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := u.do(ctx, req)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("fsemu: REGISTER answered %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// SendMessage sends a MESSAGE to toUser@domain via the switch, answering
// the 407, and returns the final status (the switch always says 202).
func (u *UA) SendMessage(ctx context.Context, toUser, contentType string, body []byte) (int, error) {
	req := u.request(sip.MESSAGE, toUser)
	req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	req.SetBody(body)
	res, err := u.do(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// silentConn drops every datagram while silent, so the UA neither sees
// nor answers anything; the socket stays open (no ICMP).
// It also stamps the arrival order of each Call-ID's first datagram: sipgo
// handles requests on goroutines of their own, so the order its handlers run in
// is not the order on the wire, which is what a phone shows.
type silentConn struct {
	net.PacketConn
	silent   atomic.Bool
	arrivals sync.Map // Call-ID → uint64 arrival number
	next     atomic.Uint64
}

func (c *silentConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.silent.Load() {
			if err == nil {
				if id := callIDOf(b[:n]); id != "" {
					if _, seen := c.arrivals.Load(id); !seen {
						c.arrivals.LoadOrStore(id, c.next.Add(1))
					}
				}
			}
			return n, addr, err
		}
	}
}

func (c *silentConn) arrival(callID string) uint64 {
	v, _ := c.arrivals.Load(callID)
	n, _ := v.(uint64)
	return n
}

// callIDOf finds the Call-ID header (or its compact form i) in a raw SIP
// message, without parsing the rest.
func callIDOf(b []byte) string {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return "" // end of headers
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")) {
			return string(bytes.TrimSpace(value))
		}
	}
	return ""
}
