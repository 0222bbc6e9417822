package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// ViewStore is the store's read side that the admin API shows; *kv.Store
// satisfies it. `sipsilo inspect` reads the same functions from the file, so both
// show the same numbers.
type ViewStore interface {
	Summary() (kv.Summary, error)
	QueuePage(aor, after string, limit int) (kv.Page[*kv.Message], error)
	MessagePage(st kv.State, after string, limit int) (kv.Page[*kv.Message], error)
	Get(id string) (*kv.Message, error)
}

// ViewPresence is the live reachability map; *presence.Map satisfies it.
type ViewPresence interface {
	Page(after string, limit int) ([]presence.State, string)
	Lookup(aor string) (presence.State, bool)
	Now() time.Time
}

var (
	_ ViewStore    = (*kv.Store)(nil)
	_ ViewPresence = (*presence.Map)(nil)
)

// AdminViews is what the admin API's read routes show. A route whose part is nil
// answers 503.
type AdminViews struct {
	Store    ViewStore
	Presence ViewPresence
}

const (
	defaultPageLimit = 50
	maxPageLimit     = 500
	maxAORBytes      = 1024 // as kv's queue keys
)

// registerViews adds the read routes under g (already behind the bearer check).
// GET /messages/:id is registered by registerAdmin (storedMessage), because it also
// falls back to the MySQL history.
func registerViews(g *echo.Group, v AdminViews) {
	g.GET("/stats", func(c echo.Context) error { return viewStats(c, v.Store) })
	g.GET("/queue/:aor", func(c echo.Context) error { return viewQueue(c, v.Store) })
	g.GET("/dead", func(c echo.Context) error { return viewByState(c, v.Store) })
	g.GET("/presence", func(c echo.Context) error { return viewPresenceAll(c, v.Presence) })
	g.GET("/presence/:aor", func(c echo.Context) error { return viewPresenceOne(c, v.Presence) })
}

// badCursor is every list's answer to an after= that names no position in it.
func badCursor(c echo.Context) error {
	return apiError(c, http.StatusBadRequest, "after: not a position in this list (use the next value of the previous page)")
}

func noStore(c echo.Context) error {
	return apiError(c, http.StatusServiceUnavailable, "the store is not available to the admin API")
}

// storeError answers a failed store read or change: a cursor the list does not
// know or a message that cannot change is the caller's mistake, anything else
// the store's.
func storeError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, kv.ErrBadCursor):
		return badCursor(c)
	case errors.Is(err, kv.ErrNotFound):
		return apiError(c, http.StatusNotFound, "no such message")
	case errors.Is(err, kv.ErrNotQueued):
		return apiError(c, http.StatusConflict, "message is not queued: "+err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return apiError(c, http.StatusServiceUnavailable, "store too slow: "+err.Error())
	}
	return apiError(c, http.StatusInternalServerError, "store failed: "+err.Error())
}

// GET /api/v1/stats: the same summary as `sipsilo inspect stats`.
func viewStats(c echo.Context, s ViewStore) error {
	if s == nil {
		return noStore(c)
	}
	sum, err := s.Summary()
	if err != nil {
		return storeError(c, err)
	}
	return c.JSON(http.StatusOK, sum)
}

// GET /api/v1/queue/:aor?after=<message id>&limit=N: the recipient's queue in
// delivery order.
func viewQueue(c echo.Context, s ViewStore) error {
	if s == nil {
		return noStore(c)
	}
	aor, err := aorParam(c)
	if err != nil {
		return apiError(c, http.StatusBadRequest, err.Error())
	}
	after, limit, err := pageParams(c)
	if err != nil {
		return apiError(c, http.StatusBadRequest, err.Error())
	}
	p, err := s.QueuePage(aor, after, limit)
	if err != nil {
		return storeError(c, err)
	}
	return c.JSON(http.StatusOK, messagePage(p, time.Now()))
}

// GET /api/v1/dead?state=<state>&after=<message id>&limit=N: dead letters, or the
// messages in any other state.
func viewByState(c echo.Context, s ViewStore) error {
	if s == nil {
		return noStore(c)
	}
	st := kv.StateDead
	if q := c.QueryParam("state"); q != "" {
		if !validState(q) {
			return apiError(c, http.StatusBadRequest, "state must be a state name such as dead, expired, queued")
		}
		st = kv.State(q)
	}
	after, limit, err := pageParams(c)
	if err != nil {
		return apiError(c, http.StatusBadRequest, err.Error())
	}
	p, err := s.MessagePage(st, after, limit)
	if err != nil {
		return storeError(c, err)
	}
	return c.JSON(http.StatusOK, messagePage(p, time.Now()))
}

// storedMessage: GET /api/v1/messages/:id from the store, with the message's own
// history; a message the store does not hold is looked up in the MySQL history when
// one is configured.
func storedMessage(c echo.Context, s ViewStore, h History) error {
	id := c.Param("id")
	if len(id) != 26 {
		return apiError(c, http.StatusBadRequest, "id must be a message id (26 characters)")
	}
	if s == nil {
		return message(c, h)
	}
	m, err := s.Get(id)
	if errors.Is(err, kv.ErrNotFound) {
		if h == nil {
			return apiError(c, http.StatusNotFound, "no such message")
		}
		return message(c, h)
	}
	if err != nil {
		return storeError(c, err)
	}
	return c.JSON(http.StatusOK, struct {
		kv.MessageView
		Source string `json:"source"`
	}{kv.ViewOf(m, time.Now()), "store"})
}

// GET /api/v1/presence?after=<aor>&limit=N: every AOR presence knows, in AOR order.
func viewPresenceAll(c echo.Context, p ViewPresence) error {
	if p == nil {
		return apiError(c, http.StatusServiceUnavailable, "presence is not available to the admin API")
	}
	after, limit, err := pageParams(c)
	if err != nil {
		return apiError(c, http.StatusBadRequest, err.Error())
	}
	if after != "" && !strings.Contains(after, "@") {
		return badCursor(c) // presence lists AORs; as the store's lists, refuse what none is
	}
	states, next := p.Page(after, limit)
	now := p.Now()
	out := kv.Page[presence.View]{Items: make([]presence.View, 0, len(states)), Next: next}
	for _, st := range states {
		out.Items = append(out.Items, presence.ViewOf(st, now))
	}
	return c.JSON(http.StatusOK, out)
}

// GET /api/v1/presence/:aor: one AOR with its registrations, its evidence and what
// sipsilo's pinger saw of each.
func viewPresenceOne(c echo.Context, p ViewPresence) error {
	if p == nil {
		return apiError(c, http.StatusServiceUnavailable, "presence is not available to the admin API")
	}
	aor, err := aorParam(c)
	if err != nil {
		return apiError(c, http.StatusBadRequest, err.Error())
	}
	st, ok := p.Lookup(aor)
	if !ok {
		return apiError(c, http.StatusNotFound, "presence knows nothing about this address")
	}
	return c.JSON(http.StatusOK, presence.ViewOf(st, p.Now()))
}

func messagePage(p kv.Page[*kv.Message], now time.Time) kv.Page[kv.MessageView] {
	out := kv.Page[kv.MessageView]{Items: make([]kv.MessageView, 0, len(p.Items)), Next: p.Next}
	for _, m := range p.Items {
		out.Items = append(out.Items, kv.ViewOf(m, now))
	}
	return out
}

// aorParam is the :aor path segment, decoded. echo matches on the raw path when
// the request's escaping differs from the default one (then the parameter is still
// escaped) and on the decoded path otherwise, so it is unescaped only in the first
// case: "a%2Fb@x" is "a/b@x" and a literal "%41" stays "%41".
func aorParam(c echo.Context) (string, error) {
	aor := c.Param("aor")
	if c.Request().URL.RawPath != "" {
		var err error
		if aor, err = url.PathUnescape(aor); err != nil {
			return "", errors.New("aor: bad escaping")
		}
	}
	if !strings.Contains(aor, "@") || len(aor) > maxAORBytes || !utf8.ValidString(aor) ||
		strings.ContainsFunc(aor, unicode.IsControl) {
		return "", errors.New("aor must be a user@host address (UTF-8, no control characters, at most 1024 bytes)")
	}
	return aor, nil
}

// pageParams reads ?after= and ?limit=: limit defaults to 50, and anything above
// 500, however large, is 500.
func pageParams(c echo.Context) (after string, limit int, err error) {
	after = c.QueryParam("after")
	if len(after) > maxAORBytes || !utf8.ValidString(after) || strings.ContainsFunc(after, unicode.IsControl) {
		return "", 0, errors.New("after must be the next value of the previous page")
	}
	limit = defaultPageLimit
	if l := c.QueryParam("limit"); l != "" {
		if strings.Trim(l, "0123456789") != "" || strings.Trim(l, "0") == "" {
			return "", 0, errors.New("limit must be a positive number")
		}
		limit = maxPageLimit
		if n, err := strconv.Atoi(l); err == nil && n < maxPageLimit {
			limit = n
		}
	}
	return after, limit, nil
}

// validState accepts the shape of a state name (kv's are lower-case words with
// underscores), so a typo finds nothing rather than an error, but no junk reaches
// the store.
func validState(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return true
}
