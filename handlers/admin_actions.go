package handlers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/kv"
)

// AdminActions is what the admin API's actions change: the store and relay,
// wired together by the daemon.
type AdminActions interface {
	Get(id string) (*kv.Message, error)
	Enqueue(ctx context.Context, m *kv.Message) (string, error)
	Purge(ctx context.Context, id, reason string) (*kv.Message, error)
	PurgeQueue(ctx context.Context, aor, reason string, max int) ([]*kv.Message, error)
	Requeue(ctx context.Context, id, reason string) (*kv.Message, error)
	// Retry drops the waits on aor's queue (only message id's Timer F hold when
	// id is set) and wakes it; see relay.Relay.Retry. An error wrapping
	// ErrTimerF means nothing was changed.
	Retry(aor, id string, force bool) (RetryOutcome, error)
	// Queued is told about a message now in a queue (injected or requeued): relay
	// wakes its recipient.
	Queued(m *kv.Message)
	Quota() int
}

// RetryOutcome is what a retry released (relay.RetryResult).
type RetryOutcome struct {
	Backoff     bool     `json:"backoff_cleared"`
	TimerF      []string `json:"timer_f,omitempty"`
	Deliverable bool     `json:"deliverable"`
}

// ErrTimerF is wrapped by AdminActions.Retry when a message is held for Timer F.
var ErrTimerF = errors.New("held for Timer F")

// actionTimeout bounds each action; a purge of a long queue takes a few commits.
const actionTimeout = 10 * time.Second

const purgeReason = "purged through the admin API"

// registerActions adds the routes that change the store: purge, retry, inject.
func registerActions(g *echo.Group, cfg AdminConfig) {
	a := &actions{do: cfg.Actions, maxBody: cfg.MaxBody, domains: domainSet(cfg.Domains), targets: cfg.Targets}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBody
	}
	g.POST("/messages", a.inject)
	g.DELETE("/messages/:id", a.purgeMessage)
	g.POST("/messages/:id/retry", a.retryMessage)
	g.DELETE("/queue/:aor", a.purgeQueue)
	g.POST("/queue/:aor/retry", a.retryQueue)
}

type actions struct {
	do      AdminActions
	maxBody int
	domains map[string]bool // empty: every domain
	targets func(aor string) []string
}

func actionContext(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), actionTimeout)
}

type purgeJSON struct {
	Purged int      `json:"purged"`
	IDs    []string `json:"ids"`
	// InFlight are purged messages whose send was already with FreeSWITCH: it
	// cannot be called back, and a 2xx from the device records them delivered.
	InFlight []string `json:"in_flight,omitempty"`
}

func purged(ms []*kv.Message) purgeJSON {
	out := purgeJSON{Purged: len(ms), IDs: make([]string, 0, len(ms))}
	for _, m := range ms {
		out.IDs = append(out.IDs, m.ID)
		if m.InFlight != "" {
			out.InFlight = append(out.InFlight, m.ID)
		}
	}
	return out
}

// purgeMessage: DELETE /api/v1/messages/:id.
func (a *actions) purgeMessage(c echo.Context) error {
	id, ok := messageID(c)
	if !ok {
		return apiError(c, http.StatusBadRequest, "id must be a message id (26 characters)")
	}
	ctx, cancel := actionContext(c)
	defer cancel()
	m, err := a.do.Purge(ctx, id, purgeReason)
	if err != nil {
		return storeError(c, err)
	}
	return c.JSON(http.StatusOK, purged([]*kv.Message{m}))
}

// purgeQueue: DELETE /api/v1/queue/:aor.
func (a *actions) purgeQueue(c echo.Context) error {
	aor, err := aorParam(c)
	if err != nil {
		return apiError(c, http.StatusBadRequest, err.Error())
	}
	ctx, cancel := actionContext(c)
	defer cancel()
	ms, err := a.do.PurgeQueue(ctx, aor, purgeReason, 0)
	if err != nil && len(ms) == 0 {
		return storeError(c, err)
	}
	// A partial purge (deadline reached) still reports what it did.
	return c.JSON(http.StatusOK, purged(ms))
}

// retryMessage: POST /api/v1/messages/:id/retry[?force=1]. A queued message's
// queue is woken with its backoff dropped; a dead letter is queued again first.
func (a *actions) retryMessage(c echo.Context) error {
	id, ok := messageID(c)
	if !ok {
		return apiError(c, http.StatusBadRequest, "id must be a message id (26 characters)")
	}
	m, err := a.do.Get(id)
	if err != nil {
		return storeError(c, err)
	}
	requeued := false
	switch m.State {
	case kv.StateQueued:
	case kv.StateDead:
		ctx, cancel := actionContext(c)
		defer cancel()
		if m, err = a.do.Requeue(ctx, id, "retry requested through the admin API"); err != nil {
			return storeError(c, err)
		}
		requeued = true // retry below wakes its queue
	default:
		return apiError(c, http.StatusConflict, "message is "+string(m.State)+": nothing to retry")
	}
	return a.retry(c, m.To, id, requeued)
}

// retryQueue: POST /api/v1/queue/:aor/retry[?force=1].
func (a *actions) retryQueue(c echo.Context) error {
	aor, err := aorParam(c)
	if err != nil {
		return apiError(c, http.StatusBadRequest, err.Error())
	}
	return a.retry(c, aor, "", false)
}

func (a *actions) retry(c echo.Context, aor, id string, requeued bool) error {
	force := c.QueryParam("force") == "1" || c.QueryParam("force") == "true"
	res, err := a.do.Retry(aor, id, force)
	if errors.Is(err, ErrTimerF) {
		return c.JSON(http.StatusConflict, struct {
			Error  string   `json:"error"`
			TimerF []string `json:"timer_f"`
		}{"a send of these messages timed out less than Timer F (32 s) ago and FreeSWITCH may still " +
			"deliver it; retrying now can deliver them twice. Wait, or add ?force=1", res.TimerF})
	}
	if err != nil {
		return apiError(c, http.StatusInternalServerError, err.Error())
	}
	return c.JSON(http.StatusOK, struct {
		RetryOutcome
		Requeued bool `json:"requeued,omitempty"`
	}{res, requeued})
}

func messageID(c echo.Context) (string, bool) {
	id := c.Param("id")
	return id, len(id) == 26
}
