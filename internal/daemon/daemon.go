// Package daemon is the running sipsilo (`sipsilo serve`): New checks a Config,
// Run opens the store, builds every component, connects them, runs them and
// stops them in order. It is wiring only: what each part does lives in its own
// package (FreeSWITCH → handlers → kv → relay → esl (bgapi chat) → FreeSWITCH,
// with presence and the body tracker fed by the ESL event stream through
// internal/freeswitch, and mirror draining kv into MySQL). Tests can embed it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/internal/freeswitch"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/metrics"
	"github.com/sipsilo/sipsilo/mirror"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// Daemon is a checked configuration, ready to Run.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	mode  presence.PingMode
	mysql *mysql.Config // nil without --mysql-dsn
}

// New checks cfg for what can never work, so that serve stops with a clear
// message instead of running without the part that needs it. It opens nothing
// and starts nothing; logs go to logOut.
func New(cfg Config, logOut io.Writer) (*Daemon, error) {
	mode, err := presence.ParsePingMode(cfg.Ping.Mode)
	if err != nil {
		return nil, err
	}
	if cfg.PBX == PBXAsterisk {
		return newAsterisk(cfg, logOut, mode)
	}
	if cfg.PBX != "" && cfg.PBX != PBXFreeSWITCH {
		return nil, fmt.Errorf("--pbx %q: want %s or %s", cfg.PBX, PBXFreeSWITCH, PBXAsterisk)
	}
	// FreeSWITCH reads the password from a one-line command: with CR or LF in it
	// no login can ever succeed.
	if err := (esl.Config{Addr: cfg.ESLAddr, Password: cfg.ESLPassword}).Check(); err != nil {
		return nil, fmt.Errorf("--esl/--esl-password (SIPSILO_ESL_PASSWORD) cannot work with FreeSWITCH: %w", err)
	}
	d := &Daemon{cfg: cfg, log: newLogger(cfg, logOut), mode: mode}
	if err := d.checkMySQL(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Daemon) checkMySQL() error {
	if d.cfg.MySQLDSN != "" {
		// mirror.Open sets what it relies on (parseTime, UTC, deadlines) on its copy.
		var err error
		if d.mysql, err = mysql.ParseDSN(d.cfg.MySQLDSN); err != nil {
			return fmt.Errorf("--mysql-dsn: %w", err)
		}
	}
	return nil
}

// parts are the components of one Run and their connections.
type parts struct {
	store  *kv.Store
	client *esl.Client
	pres   *presence.Map
	relay  *relay.Relay
	bodies *relay.Bodies
	router *freeswitch.Router
	http   *echo.Echo
	pinger *presence.Pinger       // nil with --ping off
	reach  *presence.Reachability // nil with --ping off
	flush  *freeswitch.Flusher    // nil without --flush-unreachable
	mirror *mirrorLoop            // nil without --mysql-dsn
	ami    *asteriskParts         // set with --pbx asterisk; client, router and flush are nil then
	obs    *metrics.Metrics
	log    *slog.Logger
}

// assemble builds the components on an open store and connects them. Only the
// pinger holds anything (its socket) before start: closePinger releases it.
func (d *Daemon) assemble(store *kv.Store, reg *prometheus.Registry) (*parts, error) {
	cfg, log := d.cfg, d.log
	p := &parts{store: store, log: log}
	asterisk := cfg.PBX == PBXAsterisk
	if !asterisk {
		p.client = esl.New(esl.Config{Addr: cfg.ESLAddr, Password: cfg.ESLPassword, Logger: log})
	}
	pinging := d.mode != presence.PingOff
	var err error
	if p.obs, err = metrics.New(reg, p.metricSources(pinging, d.mysql != nil, asterisk)); err != nil {
		return nil, err
	}
	if cfg.Ping.FlushUnreachable && pinging && !asterisk {
		p.flush = freeswitch.NewFlusher(p.client, cfg.Profiles[0], log)
	}
	p.pres, err = presence.New(presence.Config{
		Store:        store,
		Logger:       log.With("component", "presence"),
		Profiles:     cfg.Profiles,
		PingMisses:   cfg.Ping.Misses,
		DeviceMemory: cfg.DeviceMemory,
		// A recipient coming back wakes its queue; p.relay is set below, before
		// any event can be applied.
		OnReachable: func(aor string) { p.relay.Wake(aor) },
		OnUnreachable: func(aor string, r presence.Registration) {
			if p.flush != nil {
				p.flush.Request(aor, r)
			}
		},
		OnDetected: p.obs.Detected,
	})
	if err != nil {
		return nil, err
	}
	if p.flush != nil {
		p.flush.Still = p.pres.StillUnreachable
	}
	rcfg := cfg.Relay
	rcfg.Logger = log
	rcfg.DrainTimeout = cfg.ShutdownTimeout / 2
	rcfg.Observer = p.obs
	// A lane per device for the copies of messages to users with several
	// devices (docs/decisions.md §29); the Reachability below serves their probes
	// and direct sends too (relay.DeviceProber, relay.DeviceContacts).
	rcfg.Devices = p.pres
	if pinging {
		reach := presence.NewReachability(p.pres, presence.ReachabilityConfig{Mode: d.mode,
			ProbeAfter: cfg.Ping.ProbeAfter, Direct: cfg.Ping.Direct, FreshFor: 2 * cfg.Ping.Interval})
		p.pinger, err = presence.NewPinger(presence.PingerConfig{
			Addr: cfg.Ping.Addr, Interval: cfg.Ping.Interval, Timeout: cfg.Ping.Timeout,
			Misses: cfg.Ping.Misses, Rate: cfg.Ping.Rate, Concurrency: cfg.Ping.Concurrency,
			Logger: log.With("component", "pinger"),
		}, reach.Targets, p.pingResult)
		if err != nil {
			return nil, err
		}
		reach.SetPinger(p.pinger)
		p.reach = reach
		if reach.LoopbackOnly() {
			log.Warn("the pinger is bound to loopback: only phones on this host are pinged; set --ping-addr to an address the phones can reach")
		}
		rcfg.Prober = reach
		if cfg.Ping.Direct {
			rcfg.Direct = &relay.SIPDirect{Client: p.pinger.Client(), Contacts: reach, Timeout: cfg.Ping.DirectTimeout}
		}
	}
	var sender relay.Sender = freeswitch.Sender{Client: p.client}
	if asterisk {
		sender = astSender()
		rcfg.DirectOnly = true
	}
	p.relay = relay.New(rcfg, store, sender, p.pres)
	p.bodies = relay.NewBodies(store, p.relay.Wake, cfg.BodyGrace, log, nil)
	if asterisk {
		p.ami = d.assembleAsterisk(p)
	} else {
		p.router = freeswitch.NewRouter(freeswitch.RouterConfig{Client: p.client, Presence: p.pres, Bodies: p.bodies,
			Delivery: p.relay, Profiles: p.pres.Profiles(), Logger: log})
	}

	if d.mysql != nil {
		p.mirror = &mirrorLoop{cfg: mirror.Config{DSN: d.mysql, Logger: log.With("component", "mirror")},
			store: store, log: log.With("component", "mirror")}
		_ = mysql.SetLogger(mysqlLog{log.With("component", "mirror")})
	}

	hcfg := handlers.Config{Chatplan: cfg.Chatplan, Metrics: metrics.Handler(reg, log.With("component", "metrics"))}
	hcfg.Chatplan.Observe = p.obs.Intake
	if !asterisk {
		hcfg.Chatplan.BodyEvents = p.client.EventsUp
	}
	hcfg.Admin.Token = cfg.AdminToken
	hcfg.Admin.Views = handlers.AdminViews{Store: store, Presence: p.pres}
	if p.mirror != nil {
		hcfg.Admin.History = historyAdapter{p.mirror}
	}
	hcfg.Admin.Actions = adminActions{Store: store, relay: p.relay}
	hcfg.Admin.MaxBody = cfg.Chatplan.MaxBody
	hcfg.Admin.Domains = cfg.Chatplan.Domains
	// A message's targets are the recipient's devices when it is received.
	hcfg.Chatplan.Targets = p.pres.Targets
	hcfg.Admin.Targets = p.pres.Targets
	hcfg.Chatplan.Queued = func(m *kv.Message) {
		p.bodies.Expect(m.ID, m.To, m.Received)
		p.relay.Stored(m)
	}
	hcfg.Ready = map[string]func(context.Context) error{"store": store.Ping}
	if asterisk {
		hcfg.Ready["ami"] = p.ami.ready
	} else {
		hcfg.Ready["esl"] = func(context.Context) error { return eslReady(p.client.Err()) }
	}
	p.http, err = handlers.New(hcfg, store, log)
	if err == nil && asterisk {
		err = p.ami.intake(p.http, hcfg.Chatplan, store)
	}
	if err != nil {
		p.closePinger()
		return nil, err
	}
	return p, nil
}

// eslReady is /readyz's answer for the event socket: why sipsilo is not
// connected, in words an operator can act on.
func eslReady(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, esl.ErrAuthRefused):
		return errors.New("ESL authentication refused: FreeSWITCH rejected --esl-password (SIPSILO_ESL_PASSWORD)")
	case errors.Is(err, esl.ErrNotConnected):
		return errors.New("not connected to FreeSWITCH's event socket")
	}
	return fmt.Errorf("not connected to FreeSWITCH's event socket: %w", err)
}

// pingResult feeds one result of the pinger into presence. It runs on the
// pinger's goroutine, so its store write (only on a change of reachability) is
// bounded.
func (p *parts) pingResult(res presence.PingResult) {
	if res.Alive {
		p.obs.PingAnswered(res.RTT)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.pres.PingObserved(ctx, res); err != nil {
		p.log.Error("ping result not recorded", "call_id", res.Target.CallID, "err", err)
	}
}

func (p *parts) pingAddr() string {
	if p.pinger == nil {
		return "off"
	}
	return p.pinger.Addr()
}

func (p *parts) closePinger() {
	if p.pinger != nil {
		_ = p.pinger.Close()
	}
}

// The device lanes' probes and direct sends come from presence's Reachability.
var (
	_ relay.DeviceProber   = (*presence.Reachability)(nil)
	_ relay.DeviceContacts = (*presence.Reachability)(nil)
)
