package esl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipsilo/sipsilo/internal/backoff"
)

// DefaultSubscription is docs/decisions.md §3: plain event names before CUSTOM,
// since FreeSWITCH takes every word after CUSTOM as a subclass.
const DefaultSubscription = "event json MESSAGE PRESENCE_IN BACKGROUND_JOB HEARTBEAT CUSTOM " +
	"sofia::register sofia::unregister sofia::expire sofia::sip_user_state sofia::error"

// DefaultFilters narrow DefaultSubscription to the events sipsilo reads
// (docs/decisions.md §36): FreeSWITCH then neither copies nor serialises the
// rest for this connection. With any filter set, FreeSWITCH sends an event only
// if one filter's header is in it and matches (case-insensitively), so every
// kind sipsilo reads has one:
//   - every subscribed CUSTOM (the sofia:: registration events), BACKGROUND_JOB
//     (bgapi results) and HEARTBEAT (the watchdog), by Event-Name;
//   - PRESENCE_IN only with status Unregistered (not the presence of calls and
//     of every REGISTER);
//   - MESSAGE only after a chatplan that ran final: sipsilo's, with the exact
//     body (not chat results nor messages left to FreeSWITCH).
var DefaultFilters = []string{
	"Event-Name CUSTOM", "Event-Name BACKGROUND_JOB", "Event-Name HEARTBEAT",
	"status Unregistered", "final_delivery true",
}

// Errors callers can test with errors.Is.
var (
	ErrNotConnected = errors.New("esl: not connected")
	ErrDisconnected = errors.New("esl: disconnected by FreeSWITCH")
	ErrSilent       = errors.New("esl: connection silent")
	ErrBadInput     = errors.New("esl: bad input")
	ErrCommand      = errors.New("esl: command failed")
	// ErrAuthRefused: FreeSWITCH answered the password with something other than
	// +OK (a wrong password answers "-ERR invalid"). Retrying will not help until
	// the password or FreeSWITCH's event_socket.conf.xml changes.
	ErrAuthRefused = errors.New("esl: authentication refused")
	// ErrOutcomeUnknown: a bgapi job may have run, but its result cannot be known
	// (the command or event connection failed after the command was written). A
	// chat may still reach the device: do not resend at once.
	ErrOutcomeUnknown = errors.New("esl: job outcome unknown")
	// errMaybeSent marks a command error that came after the command was written.
	errMaybeSent = errors.New("the command may have been received")
)

// Config configures a Client. Zero durations take the defaults noted.
type Config struct {
	Addr     string // host:port of mod_event_socket
	Password string
	// Subscription is the whole "event json ..." command sent after every connect.
	Subscription string // default DefaultSubscription
	// Filters are sent as "filter <header> <value>", before Subscription, on
	// every event connection. Nil with the default Subscription means
	// DefaultFilters; nil with a Subscription of the caller's, none.
	Filters     []string
	DialTimeout time.Duration // connect + auth + subscribe; default 5 s
	// CommandTimeout bounds one api/bgapi reply unless the caller's ctx is shorter.
	CommandTimeout time.Duration // default 10 s
	// HeartbeatTimeout closes and replaces an event connection that received
	// nothing for this long; FreeSWITCH sends HEARTBEAT every 20 s.
	HeartbeatTimeout time.Duration // default 60 s
	// JobTimeout bounds BgAPI's wait for BACKGROUND_JOB when ctx has no deadline;
	// a blocking chat gives up after about 20 s.
	JobTimeout time.Duration // default 60 s
	BackoffMin time.Duration // default 100 ms
	BackoffMax time.Duration // default 10 s
	Logger     *slog.Logger  // default discards
}

func (cfg *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.Subscription == "" {
		cfg.Subscription = DefaultSubscription
		if cfg.Filters == nil {
			cfg.Filters = DefaultFilters
		}
	}
	def(&cfg.DialTimeout, 5*time.Second)
	def(&cfg.CommandTimeout, 10*time.Second)
	def(&cfg.HeartbeatTimeout, 60*time.Second)
	def(&cfg.JobTimeout, 60*time.Second)
	def(&cfg.BackoffMin, 100*time.Millisecond)
	def(&cfg.BackoffMax, 10*time.Second)
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

// Connected reports a new event connection, subscribed, before any of its events
// is delivered. Events sent while no connection was up are lost: resync on it.
type Connected struct {
	CoreUUID string // FreeSWITCH's Core-UUID; "" if it could not be read
	// Restarted is set when CoreUUID differs from the last one seen: FreeSWITCH
	// restarted and its state (registrations, pending jobs) is gone.
	Restarted bool
	Count     int // connections so far, 1 for the first
}

// Client is a supervised pair of ESL connections. Use New, then Run.
type Client struct {
	cfg Config
	log *slog.Logger

	events    chan *Event
	connected chan Connected
	running   atomic.Bool
	eventUp   atomic.Bool
	st        stats

	mu      sync.Mutex
	lastErr error         // why the last dial failed; nil after a success
	authLog time.Time     // when a refused password was last logged at ERROR
	cmd     *conn         // current command connection, nil while down
	cmdWake chan struct{} // closed and replaced whenever cmd is set
	jobs    map[string]chan *Event
	lost    chan struct{} // closed and replaced when an event connection ends
}

// New returns a Client for cfg; nothing happens until Run.
func New(cfg Config) *Client {
	cfg.setDefaults()
	return &Client{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "esl"),
		events:    make(chan *Event, 256),
		connected: make(chan Connected, 1),
		cmdWake:   make(chan struct{}),
		jobs:      make(map[string]chan *Event),
		lost:      make(chan struct{}),
	}
}

// Events delivers every event in the order FreeSWITCH sent it, across
// reconnects, to one consumer. A consumer that stops reading stops the event
// connection reading too (FreeSWITCH then queues); it is never closed.
func (c *Client) Events() <-chan *Event { return c.events }

// Connected receives one value per event (re)connection, sent before that
// connection's first event. If the consumer lags, values are merged: the latest
// Core-UUID and Count, Restarted if any merged value had it.
func (c *Client) Connected() <-chan Connected { return c.connected }

// Check reports a configuration FreeSWITCH can never accept: no address, or a
// password or subscription with CR or LF, which cannot be sent in one command
// line. Run refuses such a configuration with the same error.
func (cfg Config) Check() error {
	if cfg.Addr == "" {
		return errors.New("esl: no address")
	}
	if cfg.Subscription != "" {
		if err := checkLine("subscription", cfg.Subscription); err != nil {
			return err
		}
	}
	for _, f := range cfg.Filters {
		if err := checkLine("filter", f); err != nil {
			return err
		}
		if name, val, _ := strings.Cut(f, " "); name == "" || val == "" {
			return fmt.Errorf("%w: filter %q is not \"<header> <value>\"", ErrBadInput, f)
		}
	}
	return checkLine("password", cfg.Password)
}

// Run keeps both connections up until ctx ends, then closes them and returns
// nil once every goroutine it started has ended. It may be called once. It
// returns at once with Check's error for a configuration that can never work;
// failures FreeSWITCH may stop making (refused connections, a refused password)
// are retried with backoff, logged, and reported by Err.
func (c *Client) Run(ctx context.Context) error {
	if err := c.cfg.Check(); err != nil {
		return err
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("esl: Run called twice")
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.superviseEvents(ctx) })
	wg.Go(func() { c.superviseCommands(ctx) })
	wg.Wait()
	return nil
}

// sleep waits out the backoff before attempt n (0-based); false if ctx ended.
// The jitter keeps many sipsilo instances from reconnecting to a restarted
// FreeSWITCH in step.
func (c *Client) sleep(ctx context.Context, n int) bool {
	t := time.NewTimer(backoff.Delay(c.cfg.BackoffMin, c.cfg.BackoffMax, n))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// EventsUp reports whether the event connection is up and subscribed: an event
// FreeSWITCH fires now reaches sipsilo.
func (c *Client) EventsUp() bool { return c.eventUp.Load() }

// Err says why the client is not up: nil while both connections are
// established, else the last dial failure (errors.Is ErrAuthRefused when
// FreeSWITCH refused the password), or ErrNotConnected.
func (c *Client) Err() error {
	if c.Up() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr != nil {
		return c.lastErr
	}
	return ErrNotConnected
}

// authLogEvery rate-limits the ERROR line for a refused password: both
// connections retry it with backoff, at most every BackoffMax.
const authLogEvery = time.Minute

// dialFailed records why a connection could not be made and logs it: a refused
// password at ERROR (it needs an operator), at most once per authLogEvery; the
// rest, which FreeSWITCH coming up cures, at WARN.
func (c *Client) dialFailed(which string, attempt int, err error) {
	refused := errors.Is(err, ErrAuthRefused)
	c.mu.Lock()
	c.lastErr = err
	logRefused := refused && time.Since(c.authLog) >= authLogEvery
	if logRefused {
		c.authLog = time.Now()
	}
	c.mu.Unlock()
	switch {
	case logRefused:
		c.log.Error("FreeSWITCH refused the event socket password; set the one in its event_socket.conf.xml",
			"addr", c.cfg.Addr, "conn", which, "attempt", attempt, "err", err)
	case !refused:
		c.log.Warn(which+" connection failed", "addr", c.cfg.Addr, "attempt", attempt, "err", err)
	}
}

// dialed forgets the last failure.
func (c *Client) dialed() {
	c.mu.Lock()
	c.lastErr = nil
	c.mu.Unlock()
}

// Up reports whether both connections are established: events are flowing and
// commands can be sent (the /readyz check).
func (c *Client) Up() bool {
	if !c.eventUp.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil
}
