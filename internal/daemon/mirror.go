package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/internal/backoff"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/mirror"
)

// mysqlLog routes the MySQL driver's own log lines (connection trouble) into
// sipsilo's log instead of the standard logger's stderr.
type mysqlLog struct{ l *slog.Logger }

func (m mysqlLog) Print(v ...any) { m.l.Warn("mysql driver: " + fmt.Sprint(v...)) }

// mirrorLoop opens the mirror (migrations included) and drains the outbox until
// ctx ends. MySQL being down at start is no reason to refuse messages: it retries
// with backoff, and the outbox holds the history meanwhile.
type mirrorLoop struct {
	cfg   mirror.Config
	store *kv.Store
	log   *slog.Logger
	// open is the mirror once connected, for the history API; nil before.
	open atomic.Pointer[mirror.Mirror]
}

func (l *mirrorLoop) run(ctx context.Context) error {
	for n := 0; ; n++ {
		m, err := mirror.Open(ctx, l.cfg)
		if err == nil {
			l.open.Store(m)
			err = m.Run(ctx, outboxAdapter{l.store})
			l.open.Store(nil)
			if cerr := m.Close(); cerr != nil {
				l.log.Warn("closing the MySQL mirror", "err", cerr)
			}
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := backoff.Delay(200*time.Millisecond, 10*time.Second, n)
		l.log.Warn("MySQL not reachable; history waits in the outbox", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// outboxAdapter gives the mirror kv's outbox in its own terms.
type outboxAdapter struct{ s *kv.Store }

func (a outboxAdapter) OutboxBatch(maxRecords, maxBytes int) ([]mirror.Record, error) {
	recs, err := a.s.OutboxBatch(maxRecords, maxBytes)
	if err != nil {
		return nil, err
	}
	out := make([]mirror.Record, len(recs))
	for i, r := range recs {
		m := r.Message
		out[i] = mirror.Record{
			Seq: r.Seq, MsgID: r.MsgID, EventSeq: r.EventSeq, Kind: r.Kind, At: r.At, Detail: r.Detail, Device: r.Device,
			From: m.From, To: m.To, FromFull: m.FromFull, ContentType: m.ContentType, State: string(m.State),
			LastResult: m.LastResult, Body: m.Body, Received: m.Received, Delivered: m.Delivered, Attempts: m.Attempts,
		}
	}
	return out, nil
}

func (a outboxAdapter) OutboxDelete(ctx context.Context, upTo uint64) error {
	return a.s.OutboxDelete(ctx, upTo)
}

// historyAdapter gives the history API the mirror's queries, once it is open.
type historyAdapter struct{ l *mirrorLoop }

var errMirrorDown = errors.New("the MySQL mirror is not connected")

func (h historyAdapter) History(ctx context.Context, aor string, before time.Time, limit int) ([]handlers.HistoryEntry, error) {
	m := h.l.open.Load()
	if m == nil {
		return nil, errMirrorDown
	}
	es, err := m.History(ctx, aor, before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]handlers.HistoryEntry, len(es))
	for i, e := range es {
		out[i] = entry(e)
	}
	return out, nil
}

func (h historyAdapter) Message(ctx context.Context, id string) (*handlers.HistoryEntry, []handlers.HistoryEvent, error) {
	m := h.l.open.Load()
	if m == nil {
		return nil, nil, errMirrorDown
	}
	e, evs, err := m.Message(ctx, id)
	if errors.Is(err, mirror.ErrNotFound) {
		return nil, nil, handlers.ErrNoMessage
	}
	if err != nil {
		return nil, nil, err
	}
	he := entry(*e)
	out := make([]handlers.HistoryEvent, len(evs))
	for i, ev := range evs {
		out[i] = handlers.HistoryEvent{Seq: ev.Seq, Kind: ev.Kind, State: ev.State, At: ev.At, Detail: ev.Detail, Device: ev.Device}
	}
	return &he, out, nil
}

func entry(e mirror.HistoryEntry) handlers.HistoryEntry {
	return handlers.HistoryEntry{ID: e.ID, From: e.From, To: e.To, FromFull: e.FromFull, ContentType: e.ContentType,
		Body: e.Body, State: e.State, LastResult: e.LastResult, Attempts: e.Attempts, Received: e.Received,
		Delivered: e.Delivered}
}
