package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/metrics"
	"github.com/sipsilo/sipsilo/mirror"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// daemon holds the parts of a running sipsilo and their wiring: FreeSWITCH →
// handlers → kv → relay → esl (bgapi chat) → FreeSWITCH, with presence and the body
// tracker fed by the ESL event stream.
type daemon struct {
	cfg    Config
	log    *slog.Logger
	store  *kv.Store
	client *esl.Client
	pres   *presence.Map
	relay  *relay.Relay
	bodies *relay.Bodies
	router *eslRouter
	http   *echo.Echo
	pinger *presence.Pinger // nil with --ping off
	flush  *flusher         // nil without --flush-unreachable
	mirror *mirrorLoop      // nil without --mysql-dsn
	obs    *metrics.Metrics
}

func newDaemon(cfg Config, store *kv.Store, log *slog.Logger, reg *prometheus.Registry) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, store: store}
	d.client = esl.New(esl.Config{Addr: cfg.ESLAddr, Password: cfg.ESLPassword, Logger: log})
	var err error
	mode, err := presence.ParsePingMode(cfg.Ping.Mode)
	if err != nil {
		return nil, err
	}
	if d.obs, err = metrics.New(reg, d.metricSources(mode != presence.PingOff)); err != nil {
		return nil, err
	}
	if cfg.Ping.FlushUnreachable && mode != presence.PingOff {
		d.flush = newFlusher(d.client, cfg.Profiles[0], log.With("component", "flush"))
	}
	d.pres, err = presence.New(presence.Config{
		Store:      store,
		Logger:     log.With("component", "presence"),
		Profiles:   cfg.Profiles,
		PingMisses: cfg.Ping.Misses,
		// A recipient coming back wakes its queue; d.relay is set below, before
		// any event can be applied.
		OnReachable: func(aor string) { d.relay.Wake(aor) },
		OnUnreachable: func(aor string, r presence.Registration) {
			if d.flush != nil {
				d.flush.request(aor, r)
			}
		},
		OnDetected: d.obs.Detected,
	})
	if err != nil {
		return nil, err
	}
	rcfg := cfg.Relay
	rcfg.Logger = log
	rcfg.DrainTimeout = cfg.ShutdownTimeout / 2
	rcfg.Observer = d.obs
	if mode != presence.PingOff {
		reach := &reachability{m: d.pres, mode: mode, probeAfter: cfg.Ping.ProbeAfter,
			direct: cfg.Ping.Direct, freshFor: 2 * cfg.Ping.Interval, now: time.Now,
			loopbackOnly: loopbackAddr(cfg.Ping.Addr)}
		d.pinger, err = presence.NewPinger(presence.PingerConfig{
			Addr: cfg.Ping.Addr, Interval: cfg.Ping.Interval, Timeout: cfg.Ping.Timeout,
			Misses: cfg.Ping.Misses, Rate: cfg.Ping.Rate, Concurrency: cfg.Ping.Concurrency,
			Logger: log.With("component", "pinger"),
		}, reach.all, d.pingResult)
		if err != nil {
			return nil, err
		}
		reach.p = d.pinger
		if reach.loopbackOnly {
			log.Warn("the pinger is bound to loopback: only phones on this host are pinged; set --ping-addr to an address the phones can reach")
		}
		rcfg.Prober = reach
		if cfg.Ping.Direct {
			rcfg.Direct = &relay.SIPDirect{Client: d.pinger.Client(), Contacts: reach, Timeout: cfg.Ping.DirectTimeout}
		}
	}
	d.relay = relay.New(rcfg, store, eslSender{d.client}, presenceFeed{m: d.pres, log: log})
	d.bodies = relay.NewBodies(store, d.relay.Wake, cfg.BodyGrace, log, nil)
	d.router = &eslRouter{client: d.client, pres: d.pres, bodies: d.bodies, relay: d.relay,
		profiles: d.pres.Profiles(), log: log.With("component", "esl-events")}

	if cfg.MySQLDSN != "" {
		// mirror.Open sets what it relies on (parseTime, UTC, deadlines) on its copy.
		mcfg, err := mysql.ParseDSN(cfg.MySQLDSN)
		if err != nil {
			d.closePinger()
			return nil, fmt.Errorf("--mysql-dsn: %w", err)
		}
		d.mirror = &mirrorLoop{cfg: mirror.Config{DSN: mcfg, Logger: log.With("component", "mirror")},
			store: store, log: log.With("component", "mirror")}
		_ = mysql.SetLogger(mysqlLog{log.With("component", "mirror")})
	}

	hcfg := handlers.Config{Chatplan: cfg.Chatplan, Metrics: metrics.Handler(reg, log.With("component", "metrics"))}
	hcfg.Chatplan.Observe = d.obs.Intake
	hcfg.Admin.Token = cfg.AdminToken
	hcfg.Admin.Views = handlers.AdminViews{Store: store, Presence: d.pres}
	if d.mirror != nil {
		hcfg.Admin.History = historyAdapter{d.mirror}
	}
	hcfg.Admin.Actions = adminActions{Store: store, relay: d.relay}
	hcfg.Admin.MaxBody = cfg.Chatplan.MaxBody
	hcfg.Admin.Domains = cfg.Chatplan.Domains
	hcfg.Chatplan.Queued = func(m *kv.Message) {
		d.bodies.Expect(m.ID, m.To, m.Received)
		d.relay.Stored(m)
	}
	hcfg.Ready = map[string]func(context.Context) error{
		"store": store.Ping,
		"esl": func(context.Context) error {
			if !d.client.Up() {
				return errors.New("not connected to FreeSWITCH's event socket")
			}
			return nil
		},
	}
	d.http, err = handlers.New(hcfg, store, log)
	if err != nil {
		d.closePinger()
		return nil, err
	}
	return d, nil
}

// loopbackAddr reports whether addr (host:port) is on a loopback interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// pingResult feeds one result of the pinger into presence. It runs on the
// pinger's goroutine, so its store write (only on a change of reachability) is
// bounded.
func (d *daemon) pingResult(res presence.PingResult) {
	if res.Alive {
		d.obs.PingAnswered(res.RTT)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.pres.PingObserved(ctx, res); err != nil {
		d.log.Error("ping result not recorded", "call_id", res.Target.CallID, "err", err)
	}
}

func (d *daemon) pingAddr() string {
	if d.pinger == nil {
		return "off"
	}
	return d.pinger.Addr()
}

func (d *daemon) closePinger() {
	if d.pinger != nil {
		_ = d.pinger.Close()
	}
}

// start runs the background parts and returns the function that stops them in
// order: relay first, while ESL still brings the results of its sends in flight.
func (d *daemon) start() (stop func()) {
	relayCtx, stopRelay := context.WithCancel(context.Background())
	eslCtx, stopESL := context.WithCancel(context.Background())
	var relayWG, eslWG sync.WaitGroup
	eslWG.Go(func() { _ = d.client.Run(eslCtx) })
	eslWG.Go(func() { d.router.run(eslCtx) })
	eslWG.Go(func() { _ = d.bodies.Run(eslCtx) })
	if d.pinger != nil {
		eslWG.Go(func() { _ = d.pinger.Run(eslCtx) })
	}
	if d.flush != nil {
		eslWG.Go(func() { d.flush.run(eslCtx) })
	}
	if d.mirror != nil {
		// Stopped after relay, whose last results still add outbox records; what
		// it has not written stays in the outbox for the next run.
		eslWG.Go(func() { d.mirror.run(eslCtx) })
	}
	relayWG.Go(func() { _ = d.relay.Run(relayCtx) })
	return func() {
		stopRelay()
		relayWG.Wait()
		stopESL()
		eslWG.Wait()
		d.closePinger() // after Run returned, and after relay's last direct send
	}
}

// eslSender adapts esl.Client to relay.Sender.
type eslSender struct{ c *esl.Client }

func (s eslSender) StartJob(ctx context.Context, cmd, args, jobUUID string) (relay.Job, error) {
	j, err := s.c.StartJob(ctx, cmd, args, jobUUID)
	if err != nil {
		return nil, err
	}
	return j, nil
}

func (s eslSender) API(ctx context.Context, cmd string) (string, error) { return s.c.API(ctx, cmd) }
