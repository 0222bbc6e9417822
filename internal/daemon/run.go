package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/kv"
)

// Run runs the daemon until ctx ends or a component fails, then shuts down in
// stages, each bounded: HTTP first (no new messages), then relay (it records the
// results of sends in flight, which still need ESL), then the components relay
// depends on (ESL, its event router, the body tracker, the pinger, the flusher,
// the mirror), then the store (its writer commits what it holds). It returns
// the first error of a component that could not start or stopped on its own;
// nil after a shutdown ctx asked for.
func (d *Daemon) Run(ctx context.Context) error {
	cfg, log := d.cfg, d.log
	// With a mirror every state change also goes to the outbox (docs/architecture.md, "Storage").
	// With the journal, relay sees a new message once it is applied to bbolt, so it
	// is woken then (docs/decisions.md §34); the hook is set once relay exists.
	var wake atomic.Pointer[func(string)]
	onApply := func(aors []string) {
		if w := wake.Load(); w != nil {
			for _, aor := range aors {
				(*w)(aor)
			}
		}
	}
	store, err := kv.Open(cfg.DBPath, kv.Options{Logger: log.With("component", "kv"), Outbox: cfg.MySQLDSN != "",
		TTL: cfg.TTL, Quota: cfg.Quota, NewStore: cfg.NewStore, Journal: cfg.Journal,
		JournalSegmentSize: cfg.JournalSegment, OnApply: onApply})
	if err != nil {
		return err
	}
	// The one registry /metrics serves; nothing registers globally.
	p, err := d.assemble(store, prometheus.NewRegistry())
	if err != nil {
		store.Close(context.Background())
		return err
	}
	if p.relay != nil {
		w := p.relay.Wake
		wake.Store(&w)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		p.closePinger()
		store.Close(context.Background())
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	srv := handlers.NewServer(cfg.HTTPAddr, p.http, log)
	serveErr := make(chan error, 1)
	go func() { serveErr <- handlers.Serve(srv, ln) }() // ended by srv.Shutdown below
	failed := make(chan error, 1)
	stopComponents := p.start(failed)
	log.Info("listening", "addr", ln.Addr().String(), "db", cfg.DBPath, "esl", cfg.ESLAddr, "ping", p.pingAddr(),
		"version", cfg.Version)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("http server stopped", "err", err)
	case err = <-failed:
		log.Error("a component stopped; shutting down", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		log.Warn("http shutdown incomplete", "err", serr)
	}
	stopComponents()
	// The store gets its own budget: a slow HTTP drain must not leave the writer no
	// time to commit what it already holds.
	cctx, ccancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer ccancel()
	if cerr := store.Close(cctx); cerr != nil {
		return errors.Join(err, cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("stopped")
	return err
}

// start runs the components in two groups and returns the function that stops
// them in order: relay first, while the components it depends on (ESL, which
// brings the results of its sends in flight; the mirror, which writes the
// records of those results; and the rest fed by ESL) still run; then those.
// A component that ends on its own is reported on failed.
func (p *parts) start(failed chan<- error) (stop func()) {
	delivery := newGroup(failed, p.log)
	support := newGroup(failed, p.log)
	if p.ami != nil {
		p.ami.start(support)
	} else {
		support.run("esl", p.client.Run)
		support.run("esl events", p.router.Run)
	}
	support.run("body tracker", p.bodies.Run)
	if p.pinger != nil {
		support.run("pinger", p.pinger.Run)
	}
	if p.flush != nil {
		support.run("flusher", p.flush.Run)
	}
	if p.mirror != nil {
		// What it has not written when stopped stays in the outbox for the next run.
		support.run("mirror", p.mirror.run)
	}
	delivery.run("relay", p.relay.Run)
	return func() {
		delivery.stop()
		support.stop()
		p.closePinger() // after Run returned, and after relay's last direct send
	}
}

// group runs components until stop. One that returns before stop, with an error
// or without, is reported on failed, which Run reads once: the first failure
// stops the daemon and Run returns it; any later one is logged here.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed chan<- error
	log    *slog.Logger
}

func newGroup(failed chan<- error, log *slog.Logger) *group {
	ctx, cancel := context.WithCancel(context.Background())
	return &group{ctx: ctx, cancel: cancel, failed: failed, log: log}
}

func (g *group) run(name string, run func(context.Context) error) {
	g.wg.Go(func() {
		err := run(g.ctx)
		if g.ctx.Err() != nil {
			return // stopped
		}
		if err == nil {
			err = errors.New("stopped on its own")
		}
		err = fmt.Errorf("%s: %w", name, err)
		select {
		case g.failed <- err:
		default: // a failure is already reported; Run is shutting down
			g.log.Error("a component stopped", "err", err)
		}
	})
}

// stop ends the group's components and waits for them.
func (g *group) stop() {
	g.cancel()
	g.wg.Wait()
}

func newLogger(cfg Config, out io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}
