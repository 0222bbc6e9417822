package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/kv"
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
}

func newDaemon(cfg Config, store *kv.Store, log *slog.Logger) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, store: store}
	d.client = esl.New(esl.Config{Addr: cfg.ESLAddr, Password: cfg.ESLPassword, Logger: log})
	var err error
	d.pres, err = presence.New(presence.Config{
		Store:    store,
		Logger:   log.With("component", "presence"),
		Profiles: cfg.Profiles,
		// A recipient coming back wakes its queue; d.relay is set below, before
		// any event can be applied.
		OnReachable: func(aor string) { d.relay.Wake(aor) },
	})
	if err != nil {
		return nil, err
	}
	rcfg := cfg.Relay
	rcfg.Logger = log
	rcfg.DrainTimeout = cfg.ShutdownTimeout / 2
	d.relay = relay.New(rcfg, store, eslSender{d.client}, presenceFeed{m: d.pres, log: log})
	d.bodies = relay.NewBodies(store, d.relay.Wake, cfg.BodyGrace, log, nil)
	d.router = &eslRouter{client: d.client, pres: d.pres, bodies: d.bodies, relay: d.relay,
		profiles: d.pres.Profiles(), log: log.With("component", "esl-events")}

	hcfg := handlers.Config{Chatplan: cfg.Chatplan}
	hcfg.Chatplan.Queued = func(m *kv.Message) { d.bodies.Expect(m.ID, m.To, m.Received) }
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
		return nil, err
	}
	return d, nil
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
	relayWG.Go(func() { _ = d.relay.Run(relayCtx) })
	return func() {
		stopRelay()
		relayWG.Wait()
		stopESL()
		eslWG.Wait()
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
