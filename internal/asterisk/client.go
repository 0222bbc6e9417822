package asterisk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipsilo/sipsilo/internal/backoff"
)

// Config connects a Client.
type Config struct {
	Addr, User, Secret string
	// Events asks for events on the connection ("Events: on"); off, the
	// client only runs actions.
	Events bool
	// OnEvent gets every event that answers no action, in Asterisk's order,
	// on the reading goroutine: it must not block for long. session names the
	// connection; a new one means events may have been missed.
	OnEvent func(session string, ev Message)
	// OnConnect runs after every login, on a goroutine of its own, while
	// events keep flowing to OnEvent (e.g. a resync).
	OnConnect     func(ctx context.Context, session string)
	DialTimeout   time.Duration // default 5 s
	ActionTimeout time.Duration // default 10 s; bounds each action and the login
	RetryMin      time.Duration // default 200 ms
	RetryMax      time.Duration // default 10 s
	// MaxListEvents bounds the events one list action may return.
	MaxListEvents int // default 100,000
	Logger        *slog.Logger
}

// Errors a caller can tell apart.
var (
	ErrNotConnected = errors.New("asterisk: AMI not connected")
	ErrAuth         = errors.New("asterisk: AMI login refused")
	ErrNotAMI       = errors.New("asterisk: not an AMI server")
	// ErrAction wraps a "Response: Error" (its Message follows).
	ErrAction = errors.New("asterisk: AMI action failed")
)

// Result is an action's response and, for a list action, the events it
// listed (the closing "...Complete" event not included).
type Result struct {
	Response Message
	Events   []Message
}

// Client keeps one AMI connection up: it dials, logs in, runs actions by
// ActionID and hands events to OnEvent, and dials again with backoff when the
// connection ends. Run owns every goroutine it starts.
type Client struct {
	cfg Config
	log *slog.Logger
	ids atomic.Uint64

	logins, failures atomic.Uint64 // Stats

	mu      sync.Mutex
	conn    *conn // nil while not logged in
	lastErr error
	up      chan struct{} // closed and replaced when a login succeeds
}

// New returns a Client; nothing happens until Run.
func New(cfg Config) *Client {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = 10 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.MaxListEvents <= 0 {
		cfg.MaxListEvents = 100_000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: log.With("component", "ami"), up: make(chan struct{})}
}

// Err is why the last connection attempt failed or the last connection ended
// (nil while connected or before any attempt).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Stats are the client's counters for /metrics.
type Stats struct {
	Up bool
	// Logins: AMI logins that succeeded, the first included.
	Logins uint64
	// Failures: connection attempts that ended before a login succeeded
	// (refused, timed out, a wrong secret).
	Failures uint64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Up: c.Connected(), Logins: c.logins.Load(), Failures: c.failures.Load()}
}

// Connected reports whether the client is logged in.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// WaitConnected waits until the client is logged in or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		up, ok := c.up, c.conn != nil
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run connects and reconnects until ctx ends; it returns nil then.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for fails := 0; ; {
		err := c.session(ctx, &wg)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errWasUp) {
			fails = 0
		} else {
			c.failures.Add(1)
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		c.log.Warn("AMI connection ended", "addr", c.cfg.Addr, "err", err)
		t := time.NewTimer(backoff.Delay(c.cfg.RetryMin, c.cfg.RetryMax, fails))
		fails++
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// errWasUp marks the end of a connection that had logged in: the next dial
// starts the backoff afresh.
var errWasUp = errors.New("asterisk: AMI connection lost")

// session dials, logs in and reads until the connection ends.
func (c *Client) session(ctx context.Context, wg *sync.WaitGroup) error {
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return err
	}
	cn := &conn{nc: nc, r: bufio.NewReaderSize(nc, 4096), w: bufio.NewWriter(nc), pending: map[string]*pending{},
		maxList: c.cfg.MaxListEvents}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if err := c.login(cn); err != nil {
		return err
	}
	session := strconv.FormatInt(time.Now().UnixNano(), 36)
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr <- cn.read(func(ev Message) {
			if c.cfg.OnEvent != nil {
				c.cfg.OnEvent(session, ev)
			}
		})
	}()
	c.logins.Add(1)
	c.mu.Lock()
	c.conn, c.lastErr = cn, nil
	close(c.up)
	c.up = make(chan struct{})
	c.mu.Unlock()
	c.log.Info("AMI logged in", "addr", c.cfg.Addr)
	connCtx, cancel := context.WithCancel(ctx)
	if c.cfg.OnConnect != nil {
		wg.Add(1)
		go func() { defer wg.Done(); c.cfg.OnConnect(connCtx, session) }()
	}
	err = <-readErr
	cancel()
	c.mu.Lock()
	c.conn = nil
	c.mu.Unlock()
	cn.fail(err)
	return fmt.Errorf("%w: %w", errWasUp, err)
}

// login reads the banner and logs in, all under ActionTimeout.
func (c *Client) login(cn *conn) error {
	_ = cn.nc.SetDeadline(time.Now().Add(c.cfg.ActionTimeout))
	defer cn.nc.SetDeadline(time.Time{})
	banner, err := readLine(cn.r)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(banner, "Asterisk Call Manager/") {
		return fmt.Errorf("%w: banner %.40q", ErrNotAMI, banner)
	}
	events := "off"
	if c.cfg.Events {
		events = "on"
	}
	err = writeAction(cn.w, []Field{{"Action", "Login"}, {"ActionID", "login"}, {"Username", c.cfg.User},
		{"Secret", c.cfg.Secret}, {"Events", events}})
	if err != nil {
		return err
	}
	for range 16 { // an event may come first; bounded
		m, err := readMessage(cn.r)
		if err != nil {
			return err
		}
		if m.Get("Response") == "" {
			continue
		}
		if m.Get("Response") != "Success" {
			return fmt.Errorf("%w: %s", ErrAuth, m.Get("Message"))
		}
		return nil
	}
	return fmt.Errorf("%w: no answer to Login", ErrNotAMI)
}

// Action runs one action and waits for its response (and, for a list
// action, its events up to the closing one), bounded by ctx and
// ActionTimeout. A "Response: Error" is returned with ErrAction.
func (c *Client) Action(ctx context.Context, action string, fields ...Field) (*Result, error) {
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn == nil {
		return nil, ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ActionTimeout)
	defer cancel()
	id := "s" + strconv.FormatUint(c.ids.Add(1), 10)
	p := &pending{done: make(chan struct{})}
	if err := cn.send(id, p, append([]Field{{"Action", action}, {"ActionID", id}}, fields...)); err != nil {
		return nil, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		cn.forget(id)
		return nil, fmt.Errorf("asterisk: %s: %w", action, ctx.Err())
	}
	if p.err != nil {
		return nil, p.err
	}
	if r := p.res.Response.Get("Response"); r != "Success" && r != "Follows" && r != "Goodbye" {
		return &p.res, fmt.Errorf("%w: %s: %s", ErrAction, action, p.res.Response.Get("Message"))
	}
	return &p.res, nil
}

// conn is one logged-in connection.
type conn struct {
	nc      net.Conn
	r       *bufio.Reader
	maxList int

	wmu sync.Mutex
	w   *bufio.Writer

	mu      sync.Mutex
	pending map[string]*pending
	closed  error
}

type pending struct {
	res     Result
	list    bool // the response said EventList: start
	gotResp bool
	err     error
	done    chan struct{}
}

func (cn *conn) send(id string, p *pending, fields []Field) error {
	cn.mu.Lock()
	if cn.closed != nil {
		cn.mu.Unlock()
		return ErrNotConnected
	}
	cn.pending[id] = p
	cn.mu.Unlock()
	cn.wmu.Lock()
	_ = cn.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := writeAction(cn.w, fields)
	cn.wmu.Unlock()
	if err != nil {
		cn.forget(id)
		cn.nc.Close() // a half-written action leaves the stream unusable
	}
	return err
}

func (cn *conn) forget(id string) {
	cn.mu.Lock()
	delete(cn.pending, id)
	cn.mu.Unlock()
}

// fail ends every waiting action with err.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	cn.closed = fmt.Errorf("%w: %v", ErrNotConnected, err)
	for id, p := range cn.pending {
		p.err = cn.closed
		close(p.done)
		delete(cn.pending, id)
	}
	cn.mu.Unlock()
}

// read hands responses and listed events to their actions and the rest to
// onEvent, until the connection fails.
func (cn *conn) read(onEvent func(Message)) error {
	for {
		m, err := readMessage(cn.r)
		if err != nil {
			return err
		}
		id := m.Get("ActionID")
		cn.mu.Lock()
		p := cn.pending[id]
		if id == "" || p == nil {
			cn.mu.Unlock()
			if m.Get("Event") != "" {
				onEvent(m)
			}
			continue
		}
		finished := false
		switch {
		case !p.gotResp && m.Get("Response") != "":
			p.gotResp, p.res.Response = true, m
			p.list = strings.EqualFold(m.Get("EventList"), "start")
			finished = !p.list
		case p.gotResp && p.list && m.Get("Event") != "":
			if strings.EqualFold(m.Get("EventList"), "Complete") {
				finished = true
			} else if len(p.res.Events) < cn.maxList {
				p.res.Events = append(p.res.Events, m)
			} else {
				p.err, finished = fmt.Errorf("%w: list over %d events", ErrFrame, cn.maxList), true
			}
		}
		if finished {
			delete(cn.pending, id)
			close(p.done)
		}
		cn.mu.Unlock()
	}
}
