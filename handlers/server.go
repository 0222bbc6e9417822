// Package handlers is sipsilo's HTTP surface: the xml_curl chatplan endpoint that
// FreeSWITCH calls for every MESSAGE, the health endpoints and /metrics.
package handlers

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/sipsilo/sipsilo/kv"
)

// Store is what the handlers need of kv.Store.
type Store interface {
	Enqueue(ctx context.Context, m *kv.Message) (string, error)
	Release(ctx context.Context, id, reason string) error
}

var _ Store = (*kv.Store)(nil)

// Config configures the HTTP handlers.
type Config struct {
	Chatplan ChatplanConfig
	// Ready are the /readyz checks by name (e.g. "esl", "store"); each returns nil
	// when its part is ready.
	Ready map[string]func(ctx context.Context) error
	Admin AdminConfig
	// Metrics, if set, serves GET /metrics (the Prometheus exposition). It is
	// not behind the admin token, as Prometheus expects: it shows counts and
	// durations, never an address or a message.
	Metrics http.Handler
}

// New builds the echo router with every sipsilo route.
func New(cfg Config, store Store, log *slog.Logger) (*echo.Echo, error) {
	cp, err := newChatplan(cfg.Chatplan, store, log.With("component", "chatplan"))
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Peers are FreeSWITCH and operators on loopback; never trust X-Forwarded-For.
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(accessLog(log.With("component", "http")))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.Error("handler panic", "route", route(c), "err", err, "stack", string(stack))
			return err
		},
	}))

	var chatplanMW []echo.MiddlewareFunc
	if cfg.Chatplan.User != "" || cfg.Chatplan.Password != "" {
		user, pass := []byte(cfg.Chatplan.User), []byte(cfg.Chatplan.Password)
		chatplanMW = append(chatplanMW, middleware.BasicAuthWithConfig(middleware.BasicAuthConfig{
			Realm: "sipsilo",
			Validator: func(u, p string, _ echo.Context) (bool, error) {
				okU := subtle.ConstantTimeCompare([]byte(u), user) == 1
				okP := subtle.ConstantTimeCompare([]byte(p), pass) == 1
				return okU && okP, nil
			},
		}))
	}
	e.POST(ChatplanPath, cp.serve, chatplanMW...)
	// xml_curl's method param is sent verbatim as the request method, so a
	// configuration with method=post arrives in lower case.
	e.Add("post", ChatplanPath, cp.serve, chatplanMW...)
	e.GET("/healthz", healthz)
	e.GET("/readyz", readyz(cfg.Ready))
	if cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics))
	}
	registerAdmin(e, cfg.Admin)
	return e, nil
}

// ChatplanPath is where mod_xml_curl's chatplan binding posts.
const ChatplanPath = "/fs/chatplan"

// NewServer wraps h in an http.Server with every timeout set: FreeSWITCH opens a new
// connection per lookup, and nothing else should be able to hold one open forever.
func NewServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		// The dynamic URL carries the body percent-encoded, up to 3 bytes per byte:
		// room for the 64 KiB default body limit, and a clear 431 above.
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when every check passes and 503 with what failed otherwise,
// each check bounded so a hung store cannot hang the probe.
func readyz(checks map[string]func(ctx context.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		out, status := map[string]string{}, http.StatusOK
		for name, check := range checks {
			if err := check(ctx); err != nil {
				out[name], status = err.Error(), http.StatusServiceUnavailable
			} else {
				out[name] = "ok"
			}
		}
		return c.JSON(status, out)
	}
}

// accessLog logs one line per request. Above debug it names the route pattern
// (/api/v1/queue/:aor), never the concrete path, which holds addresses; the query
// string, which carries the message body, is never logged. A chatplan lookup
// answered 2xx, one per MESSAGE FreeSWITCH routes, is logged at debug only:
// /metrics counts those answers by outcome (sipsilo_intake_seconds), and a line
// each would cost a write, and the journal's work, per message.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // write the error response now so its status is logged
			}
			req, res := c.Request(), c.Response()
			level := slog.LevelInfo
			if res.Status < 300 && c.Path() == ChatplanPath {
				level = slog.LevelDebug
			}
			if log.Enabled(req.Context(), level) {
				logRequest(log, level, c, start)
			}
			return nil
		}
	}
}

// logRequest writes accessLog's line. Apart, so that its attributes take
// room on the stack only when a line is written.
func logRequest(log *slog.Logger, level slog.Level, c echo.Context, start time.Time) {
	req, res := c.Request(), c.Response()
	ctx := req.Context()
	attrs := []slog.Attr{
		slog.String("method", req.Method),
		slog.String("route", route(c)),
		slog.Int("status", res.Status),
		slog.Int64("bytes", res.Size),
		slog.Duration("took", time.Since(start)),
		slog.String("remote", c.RealIP()),
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		attrs = append(attrs, slog.String("path", req.URL.Path))
	}
	log.LogAttrs(ctx, level, "request", attrs...)
}

// route is the pattern of the route that served c, or "unrouted" when none did
// (a 404 or 405 before any route matched).
func route(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "unrouted"
}

// errorf is a small helper for wrapping construction errors.
func errorf(format string, args ...any) error { return fmt.Errorf("handlers: "+format, args...) }
