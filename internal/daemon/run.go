package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/kv"
)

// Serve runs the daemon until ctx ends, then shuts down in stages, each bounded:
// HTTP first (no new messages), then relay (it records the results of sends in
// flight, which still need ESL), then ESL and the body tracker, then the store (its
// writer commits what it holds).
func Serve(ctx context.Context, cfg Config, logOut io.Writer) error {
	log := newLogger(cfg, logOut)
	// With a mirror every state change also goes to the outbox (DESIGN.md, Storage).
	store, err := kv.Open(cfg.DBPath, kv.Options{Logger: log.With("component", "kv"), Outbox: cfg.MySQLDSN != "",
		TTL: cfg.TTL, Quota: cfg.Quota})
	if err != nil {
		return err
	}
	// The one registry /metrics serves; nothing registers globally.
	d, err := newDaemon(cfg, store, log, prometheus.NewRegistry())
	if err != nil {
		store.Close(context.Background())
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		d.closePinger()
		store.Close(context.Background())
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	srv := handlers.NewServer(cfg.HTTPAddr, d.http, log)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	stopWorkers := d.start()
	log.Info("listening", "addr", ln.Addr().String(), "db", cfg.DBPath, "esl", cfg.ESLAddr, "ping", d.pingAddr(),
		"version", cfg.Version)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("http server stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		log.Warn("http shutdown incomplete", "err", serr)
	}
	stopWorkers()
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

func newLogger(cfg Config, out io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}
