package presence

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"
)

// PingMode says which registered contacts sipsilo pings itself (docs/architecture.md,
// "Reachability"). Contacts it does not ping rely on FreeSWITCH's registration state and
// sip_user_state (docs/decisions.md §8).
type PingMode string

// The ping modes. PingDirect pings only contacts reachable without FreeSWITCH's NAT
// pinhole; which ones those are is the caller's choice when it builds the targets.
const (
	PingAll    PingMode = "all"
	PingDirect PingMode = "direct"
	PingOff    PingMode = "off"
)

// ParsePingMode checks a configured ping mode; "" is PingAll.
func ParsePingMode(s string) (PingMode, error) {
	switch m := PingMode(s); m {
	case "":
		return PingAll, nil
	case PingAll, PingDirect, PingOff:
		return m, nil
	}
	return "", fmt.Errorf("presence: ping mode %q: want all, direct or off", s)
}

// PingerConfig configures a Pinger. Zero values take the defaults of docs/decisions.md §8.
type PingerConfig struct {
	// Addr is the local UDP address to bind, a concrete IPv4 address and a port
	// (default "127.0.0.1:0"). sipgo matches its client connection by the socket's
	// LocalAddr, so a wildcard would make it bind a second socket (docs/decisions.md §20).
	Addr string
	// Interval is the longest time between two pings of one target (default 5 s);
	// each wait is drawn from [Interval·(1−Jitter), Interval]. Jitter only
	// shortens it, so interval + deadline + re-probe stays a bound on the
	// detection of a silent phone (7 s at the defaults; symmetric ±10 % would stretch that bound to 7.5 s:
	// docs/decisions.md §8).
	Interval time.Duration
	// Jitter is a fraction of Interval in [0, 1) (default 0.1; negative means none).
	Jitter float64
	// Timeout is one probe's deadline (default 1 s; sipgo retransmits at T1 inside it).
	// It must stay below sipgo's Timer F (32 s), which this package never changes.
	Timeout time.Duration
	// Misses is the count of consecutive misses that makes a target unreachable
	// (default 2). The pinger only reports the count; it re-probes at once while the
	// count is below Misses and logs when it reaches it.
	Misses int
	// Rate caps OPTIONS sent per second over all targets and probes (default 500;
	// math.Inf(1) means no cap).
	Rate float64
	// Concurrency caps the probes in flight (default 256).
	Concurrency int
	// UserAgent is the User-Agent header and From user (default "sipsilo").
	UserAgent string
	Logger    *slog.Logger
}

// Pinger defaults (docs/decisions.md §8).
const (
	DefaultPingInterval    = 5 * time.Second
	DefaultPingJitter      = 0.1
	DefaultPingTimeout     = time.Second
	DefaultPingMisses      = 2
	DefaultPingRate        = 500
	DefaultPingConcurrency = 256
)

func (c *PingerConfig) setDefaults() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("presence: pinger address %q: %w", c.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil || ip.IsUnspecified() {
		return fmt.Errorf("presence: pinger address %q: want a concrete IPv4 address such as 127.0.0.1:5070, not a name or a wildcard", c.Addr)
	}
	if c.Interval <= 0 {
		c.Interval = DefaultPingInterval
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = DefaultPingJitter
	case c.Jitter < 0:
		c.Jitter = 0
	case c.Jitter >= 1:
		return fmt.Errorf("presence: pinger jitter %v: want a fraction below 1", c.Jitter)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultPingTimeout
	}
	if c.Timeout >= sip.Timer_F {
		return fmt.Errorf("presence: pinger timeout %v: want less than Timer F (%v)", c.Timeout, sip.Timer_F)
	}
	if c.Misses <= 0 {
		c.Misses = DefaultPingMisses
	}
	if c.Rate <= 0 || math.IsNaN(c.Rate) {
		c.Rate = DefaultPingRate
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultPingConcurrency
	}
	if c.UserAgent == "" {
		c.UserAgent = "sipsilo"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// limiter paces every OPTIONS. The burst is small (a fiftieth of a second's worth)
// so that thousands of due targets never leave together.
func (c *PingerConfig) limiter() *rate.Limiter {
	if math.IsInf(c.Rate, 1) {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(c.Rate), max(1, int(c.Rate/50)))
}

// PingerStats counts what a Pinger did since it started.
type PingerStats struct {
	Sent     int64 // OPTIONS requests started (retransmissions not counted)
	Answered int64 // probes that got a final response
	Missed   int64 // probes without one, bad targets included
	InFlight int64 // probes running now
	Targets  int64 // targets on the schedule
}

// Pinger pings registered contacts with SIP OPTIONS over one bound UDP socket
// (docs/architecture.md, "Reachability"): each target on a jittered interval, an immediate re-probe
// after a miss, and on demand (Probe). It reports every result; deciding
// reachability is presence's job.
type Pinger struct {
	cfg     PingerConfig
	log     *slog.Logger
	targets func() []Target
	report  func(PingResult)

	pc  net.PacketConn
	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cl  *sipgo.Client
	wg  sync.WaitGroup // the socket's serving goroutine

	lim *rate.Limiter
	sem chan struct{} // one slot per probe in flight

	sched schedule

	sent, answered, missed, inFlight atomic.Int64
	closed                           atomic.Bool
	closeOnce                        sync.Once
	closeErr                         error
}

// ErrPingerClosed is the error of a Probe after Close.
var ErrPingerClosed = errors.New("presence: pinger closed")

// NewPinger binds cfg.Addr and starts serving it: responses to the pings arrive
// there, and stray requests get a minimal answer. targets lists what to ping; it is
// called from Run's goroutine about once a second. report receives every result,
// from the goroutine that probed; it must not block long, since that goroutine holds
// one of the Concurrency slots while it runs.
func NewPinger(cfg PingerConfig, targets func() []Target, report func(PingResult)) (*Pinger, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if targets == nil {
		targets = func() []Target { return nil }
	}
	if report == nil {
		report = func(PingResult) {}
	}
	p := &Pinger{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "pinger"),
		targets: targets,
		report:  report,
		lim:     cfg.limiter(),
		sem:     make(chan struct{}, cfg.Concurrency),
	}
	p.sched.init()
	if err := p.startSIP(); err != nil {
		return nil, err
	}
	return p, nil
}

// startSIP binds the one socket, serves it and creates the client on it
// (docs/decisions.md §20: without WithClientConnectionAddr sipgo opens a socket per
// destination and keeps it).
func (p *Pinger) startSIP() error {
	pc, err := net.ListenPacket("udp4", p.cfg.Addr)
	if err != nil {
		return fmt.Errorf("presence: pinger bind: %w", err)
	}
	host, _, _ := net.SplitHostPort(pc.LocalAddr().String())
	lg := p.log.With("lib", "sipgo")
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(p.cfg.UserAgent), sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(lg),
			// A late answer to a probe that already timed out: sipgo would log it at
			// info on its global logger, once per answer.
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				p.log.Debug("late response", "status", r.StatusCode, "from", r.Source())
			})),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(lg)))
	if err != nil {
		pc.Close()
		return fmt.Errorf("presence: pinger UA: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(lg))
	var cl *sipgo.Client
	if err == nil {
		cl, err = sipgo.NewClient(ua, sipgo.WithClientConnectionAddr(pc.LocalAddr().String()),
			sipgo.WithClientHostname(host), sipgo.WithClientLogger(lg))
	}
	if err != nil {
		ua.Close()
		pc.Close()
		return fmt.Errorf("presence: pinger SIP: %w", err)
	}
	srv.OnOptions(p.answerOptions)
	srv.OnNoRoute(p.answerStray)
	p.pc, p.ua, p.srv, p.cl = pc, ua, srv, cl
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := srv.ServeUDP(pc); err != nil && !errors.Is(err, net.ErrClosed) {
			p.log.Warn("pinger socket ended", "err", err)
		}
	}()
	if err := waitUDPServed(ua, pc.LocalAddr().String()); err != nil {
		p.Close()
		return err
	}
	return nil
}

// waitUDPServed waits until sipgo has registered the socket: a request sent before
// that would make sipgo bind the same address again and fail.
func waitUDPServed(ua *sipgo.UserAgent, addr string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("presence: pinger socket %s not served", addr)
		}
		time.Sleep(time.Millisecond)
	}
}

// answerOptions answers an OPTIONS to the pinger's own socket: FreeSWITCH or a
// phone may ping back.
func (p *Pinger) answerOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "OPTIONS"))
	if err := tx.Respond(res); err != nil {
		p.log.Debug("pinger answer", "err", err)
	}
}

// answerStray answers anything else minimally: 481 for what refers to a transaction
// or dialog the pinger never has, 405 for the rest, nothing for an ACK.
func (p *Pinger) answerStray(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() || tx == nil {
		return
	}
	code, reason := sip.StatusMethodNotAllowed, "Method Not Allowed"
	switch req.Method {
	case sip.BYE, sip.CANCEL:
		code, reason = sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist"
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Allow", "OPTIONS"))
	if err := tx.Respond(res); err != nil {
		p.log.Debug("pinger answer", "err", err)
	}
}

// Addr is the bound address, ip:port.
func (p *Pinger) Addr() string { return p.pc.LocalAddr().String() }

// Client is the sipgo client on the pinger's socket, for sipsilo's direct MESSAGE
// sends: they leave from the same address as the pings, and their responses arrive
// on the socket the pinger serves.
func (p *Pinger) Client() *sipgo.Client { return p.cl }

// Stats returns the counters.
func (p *Pinger) Stats() PingerStats {
	return PingerStats{
		Sent:     p.sent.Load(),
		Answered: p.answered.Load(),
		Missed:   p.missed.Load(),
		InFlight: p.inFlight.Load(),
		Targets:  p.sched.count.Load(),
	}
}

// Close closes the socket and the SIP stack and waits for the serving goroutine.
// Call it after Run has returned; probes still running then fail as misses. It is
// idempotent.
func (p *Pinger) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.ua.Close() // terminates every transaction, so no sipgo timer outlives us
		if err := p.pc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.closeErr = err
		}
		p.wg.Wait()
	})
	return p.closeErr
}
