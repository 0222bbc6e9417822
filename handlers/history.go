package handlers

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// HistoryEntry is one message as the MySQL history holds it.
type HistoryEntry struct {
	ID          string
	From, To    string
	FromFull    string
	ContentType string
	Body        []byte
	State       string
	LastResult  string
	Attempts    int
	Received    time.Time
	Delivered   *time.Time
}

// HistoryEvent is one state change of a message.
type HistoryEvent struct {
	Seq    int
	Kind   string
	State  string
	At     time.Time
	Detail string
	Device string // the device whose copy changed (docs/decisions.md §29)
}

// ErrNoMessage is what History.Message returns for an unknown id.
var ErrNoMessage = errors.New("no such message")

// History is the read side of the MySQL mirror.
type History interface {
	History(ctx context.Context, aor string, before time.Time, limit int) ([]HistoryEntry, error)
	Message(ctx context.Context, id string) (*HistoryEntry, []HistoryEvent, error)
}

// AdminConfig configures /api/v1.
type AdminConfig struct {
	// Token is the bearer token every /api/v1 request must carry; empty disables
	// the API.
	Token string
	// History is nil when no MySQL mirror is configured.
	History History
	// Views are the read routes on the store and presence (admin_views.go).
	Views AdminViews
	// Actions, if set, enables purge, retry and inject (admin_actions.go).
	Actions AdminActions
	// MaxBody is the largest body an injected message may have (the chatplan's
	// --max-body).
	MaxBody int
	// Domains, if set, are the only recipient domains an injected message may
	// have (the chatplan's --domains): sipsilo serves those users only.
	Domains []string
	// Targets, if set, gives an injected message its per-device copies, as
	// ChatplanConfig.Targets does at intake.
	Targets func(aor string) []string
}

const (
	defaultHistoryLimit = 50
	maxHistoryLimit     = 500
)

// registerAdmin adds the token-protected API.
func registerAdmin(e *echo.Echo, cfg AdminConfig) {
	g := e.Group("/api/v1", bearer(cfg.Token))
	g.GET("/history", func(c echo.Context) error { return history(c, cfg.History) })
	g.GET("/messages/:id", func(c echo.Context) error { return storedMessage(c, cfg.Views.Store, cfg.History) })
	registerViews(g, cfg.Views)
	if cfg.Actions != nil {
		registerActions(g, cfg)
	}
}

// bearer checks "Authorization: Bearer <token>" in constant time.
func bearer(token string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if token == "" {
				return apiError(c, http.StatusForbidden, "admin API disabled: start sipsilo with --admin-token")
			}
			got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="sipsilo"`)
				return apiError(c, http.StatusUnauthorized, "missing or wrong bearer token")
			}
			return next(c)
		}
	}
}

func apiError(c echo.Context, status int, msg string) error {
	return c.JSON(status, map[string]string{"error": msg})
}

// history: GET /api/v1/history?aor=user@host[&before=RFC3339][&limit=N], newest
// first. The next page is before=<received of the last entry>.
func history(c echo.Context, h History) error {
	if h == nil {
		return apiError(c, http.StatusServiceUnavailable, "history needs the MySQL mirror: start sipsilo with --mysql-dsn")
	}
	aor := c.QueryParam("aor")
	if aor == "" || len(aor) > 1024 || !utf8.ValidString(aor) {
		return apiError(c, http.StatusBadRequest, "aor (user@host) is required")
	}
	var before time.Time
	if b := c.QueryParam("before"); b != "" {
		t, err := time.Parse(time.RFC3339Nano, b)
		if err != nil {
			return apiError(c, http.StatusBadRequest, "before must be an RFC 3339 time")
		}
		before = t
	}
	limit := defaultHistoryLimit
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return apiError(c, http.StatusBadRequest, "limit must be a positive number")
		}
		limit = min(n, maxHistoryLimit)
	}
	entries, err := h.History(c.Request().Context(), aor, before, limit)
	if err != nil {
		return apiError(c, http.StatusServiceUnavailable, "history unavailable: "+err.Error())
	}
	out := struct {
		Messages []entryJSON `json:"messages"`
		Next     string      `json:"next_before,omitempty"`
	}{Messages: make([]entryJSON, 0, len(entries))}
	for i := range entries {
		out.Messages = append(out.Messages, toJSON(&entries[i]))
	}
	if len(entries) == limit {
		out.Next = entries[len(entries)-1].Received.UTC().Format(time.RFC3339Nano)
	}
	return c.JSON(http.StatusOK, out)
}

// message: GET /api/v1/messages/:id with its state changes in order.
func message(c echo.Context, h History) error {
	if h == nil {
		return apiError(c, http.StatusServiceUnavailable, "history needs the MySQL mirror: start sipsilo with --mysql-dsn")
	}
	id := c.Param("id")
	if len(id) != 26 {
		return apiError(c, http.StatusBadRequest, "id must be a message id (26 characters)")
	}
	m, evs, err := h.Message(c.Request().Context(), id)
	if errors.Is(err, ErrNoMessage) {
		return apiError(c, http.StatusNotFound, "no such message")
	}
	if err != nil {
		return apiError(c, http.StatusServiceUnavailable, "history unavailable: "+err.Error())
	}
	out := struct {
		entryJSON
		Events []eventJSON `json:"events"`
	}{entryJSON: toJSON(m), Events: make([]eventJSON, 0, len(evs))}
	for _, e := range evs {
		out.Events = append(out.Events, eventJSON{Seq: e.Seq, Kind: e.Kind, State: e.State, At: e.At.UTC(), Detail: e.Detail, Device: e.Device})
	}
	return c.JSON(http.StatusOK, out)
}

type entryJSON struct {
	ID          string     `json:"id"`
	From        string     `json:"from"`
	To          string     `json:"to"`
	FromFull    string     `json:"from_full,omitempty"`
	ContentType string     `json:"content_type"`
	Body        *string    `json:"body,omitempty"`        // when the body is UTF-8 text
	BodyBase64  []byte     `json:"body_base64,omitempty"` // otherwise, byte for byte
	State       string     `json:"state"`
	LastResult  string     `json:"last_result,omitempty"`
	Attempts    int        `json:"attempts"`
	Received    time.Time  `json:"received"`
	Delivered   *time.Time `json:"delivered,omitempty"`
}

type eventJSON struct {
	Seq    int       `json:"seq"`
	Kind   string    `json:"kind"`
	State  string    `json:"state"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
	Device string    `json:"device,omitempty"`
}

func toJSON(m *HistoryEntry) entryJSON {
	j := entryJSON{ID: m.ID, From: m.From, To: m.To, FromFull: m.FromFull, ContentType: m.ContentType,
		State: m.State, LastResult: m.LastResult, Attempts: m.Attempts, Received: m.Received.UTC()}
	if m.Delivered != nil {
		d := m.Delivered.UTC()
		j.Delivered = &d
	}
	if utf8.Valid(m.Body) {
		b := string(m.Body)
		j.Body = &b
	} else {
		j.BodyBase64 = m.Body
	}
	return j
}
