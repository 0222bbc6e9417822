package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipsilo/sipsilo/internal/fsemu"
)

// tcpPhone is a phone that registers over TCP (fsemu's UA speaks UDP only):
// its Contact names its own listening port with transport=tcp, its REGISTER
// comes from another (the client's) port, so FreeSWITCH keeps the connection
// it came on in the registration (fs_path) and sends back over it. It answers
// MESSAGE 200 and OPTIONS 200.
type tcpPhone struct {
	user, sw string
	ln       net.Listener
	ua       *sipgo.UserAgent
	cl       *sipgo.Client
	recv     chan fsemu.Received
	arrival  sync.Map // Call-ID → arrival number, stamped as the bytes are read
	arrivals atomic.Uint64
	wg       sync.WaitGroup

	mu      sync.Mutex
	callID  string
	cseq    uint32
	fromTag string
}

// newTCPPhone starts a TCP phone of user (password 1234) for the switch at
// sipAddr, closed when the test ends.
func newTCPPhone(t testing.TB, sipAddr, user string) *tcpPhone {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("e2e-tcp-phone/1.0"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	p := &tcpPhone{user: user, sw: sipAddr, ln: ln, ua: ua, recv: make(chan fsemu.Received, 4096),
		callID: fmt.Sprintf("tcp-%d-%d@e2e", time.Now().UnixNano(), ln.Addr().(*net.TCPAddr).Port),
		cseq:   1, fromTag: sip.GenerateTagN(8)}
	srv, err := sipgo.NewServer(ua)
	if err == nil {
		p.cl, err = sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	}
	if err != nil {
		ua.Close()
		ln.Close()
		t.Fatal(err)
	}
	srv.OnMessage(p.onMessage)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = srv.ServeTCP(stampListener{Listener: ln, p: p})
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = p.Unregister(ctx)
		cancel()
		ua.Close()
		ln.Close()
		p.wg.Wait()
	})
	return p
}

// Addr is the phone's listening address, the host:port of its Contact.
func (p *tcpPhone) Addr() string { return p.ln.Addr().String() }

// Received delivers every MESSAGE the phone answered 200.
func (p *tcpPhone) Received() <-chan fsemu.Received { return p.recv }

func (p *tcpPhone) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	if err := tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil)); err != nil {
		return
	}
	r := fsemu.Received{CallID: req.CallID().Value(), Body: append([]byte(nil), req.Body()...), At: time.Now(),
		Header: func(string) string { return "" }}
	if v, ok := p.arrival.Load(r.CallID); ok {
		r.Arrival = v.(uint64)
	}
	if h := req.From(); h != nil {
		r.From = h.Value()
	}
	select {
	case p.recv <- r:
	default:
	}
}

// Register registers the phone's TCP contact for expires.
func (p *tcpPhone) Register(ctx context.Context, expires time.Duration) error {
	return p.register(ctx, int(expires/time.Second))
}

// Unregister sends REGISTER with Expires 0 on the same Call-ID.
func (p *tcpPhone) Unregister(ctx context.Context) error { return p.register(ctx, 0) }

func (p *tcpPhone) register(ctx context.Context, expires int) error {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "127.0.0.1"})
	req.SetTransport("TCP")
	req.SetDestination(p.sw)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: p.user, Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", p.fromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: p.user, Host: "127.0.0.1"}})
	callID := sip.CallIDHeader(p.callID)
	req.AppendHeader(&callID)
	p.mu.Lock()
	p.cseq += 2
	seq := p.cseq
	p.mu.Unlock()
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.REGISTER})
	req.AppendHeader(sip.NewHeader("User-Agent", "e2e-tcp-phone/1.0"))
	port := p.ln.Addr().(*net.TCPAddr).Port
	contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: p.user, Host: "127.0.0.1", Port: port,
		UriParams: sip.NewParams()}}
	contact.Address.UriParams.Add("transport", "tcp")
	req.AppendHeader(contact)
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := p.cl.Do(ctx, req)
	if err == nil && (res.StatusCode == 401 || res.StatusCode == 407) {
		req.RemoveHeader("Via")
		res, err = p.cl.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: "1234"})
	}
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("REGISTER over TCP answered %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// stampListener numbers each request by the order its Call-ID line reached
// the phone's connections, as fsemu's UA does for UDP: sipgo runs handlers on
// goroutines of their own, so their order is not the wire's.
type stampListener struct {
	net.Listener
	p *tcpPhone
}

func (l stampListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stampConn{Conn: c, p: l.p}, nil
}

// stampConn scans what is read for Call-ID header lines (a line may span
// reads; the part after the last newline is kept for the next).
type stampConn struct {
	net.Conn
	p    *tcpPhone
	line []byte
}

func (c *stampConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.line = append(c.line, b[:n]...)
	for {
		i := bytes.IndexByte(c.line, '\n')
		if i < 0 {
			break
		}
		l := strings.TrimSpace(string(c.line[:i]))
		c.line = c.line[i+1:]
		name, value, ok := strings.Cut(l, ":")
		if ok && (strings.EqualFold(name, "Call-ID") || name == "i") {
			if id := strings.TrimSpace(value); id != "" {
				if _, seen := c.p.arrival.Load(id); !seen {
					c.p.arrival.LoadOrStore(id, c.p.arrivals.Add(1))
				}
			}
		}
	}
	if len(c.line) > 64<<10 { // no line is this long: bound what is kept
		c.line = nil
	}
	return n, err
}
