package mirror

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// HistoryEntry is a message as the history stores it.
type HistoryEntry struct {
	ID, From, To, FromFull, ContentType, State, LastResult string
	Body                                                   []byte
	Received                                               time.Time
	Delivered                                              *time.Time // nil if not delivered
	Attempts                                               int
}

// Event is one change of a message.
type Event struct {
	Seq    int
	Kind   string
	State  string // the message's state after the change
	At     time.Time
	Detail string
	Device string // the device whose copy changed; empty: the message
}

// MaxHistory is the largest page History returns.
const MaxHistory = 500

const entryColumns = "m.id, m.sender, m.recipient, m.from_full, m.content_type, m.body, " +
	"m.received, m.delivered, m.state, m.attempts, m.last_result"

// The two halves use the (sender, received) and (recipient, received)
// indexes; an OR would scan. UNION (not ALL) folds a message to oneself
// into one row. Ties on received are ordered by id, which for ULIDs is the
// arrival order.
const historyQuery = "SELECT " + entryColumns + " FROM messages m JOIN (" +
	"(SELECT id FROM messages WHERE sender = ? AND received < ? ORDER BY received DESC, id DESC LIMIT ?)" +
	" UNION " +
	"(SELECT id FROM messages WHERE recipient = ? AND received < ? ORDER BY received DESC, id DESC LIMIT ?)" +
	") u ON m.id = u.id ORDER BY m.received DESC, m.id DESC LIMIT ?"

// History returns the messages aor sent or received before before (zero:
// no bound), newest first. limit is capped at MaxHistory; zero or less
// means MaxHistory. The next page is the one before the last entry's
// Received.
func (m *Mirror) History(ctx context.Context, aor string, before time.Time, limit int) ([]HistoryEntry, error) {
	if limit <= 0 || limit > MaxHistory {
		limit = MaxHistory
	}
	bound := maxTime
	if !before.IsZero() {
		bound = dbTime(before)
	}
	rows, err := m.db.QueryContext(ctx, historyQuery, aor, bound, limit, aor, bound, limit, limit)
	if err != nil {
		return nil, fmt.Errorf("mirror: history: %w", err)
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("mirror: history: %w", err)
		}
		out = append(out, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mirror: history: %w", err)
	}
	return out, nil
}

// maxTime is later than any DATETIME the mirror writes.
var maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// Message returns one message with its events in order, or ErrNotFound.
func (m *Mirror) Message(ctx context.Context, id string) (*HistoryEntry, []Event, error) {
	if !validID(id) {
		return nil, nil, ErrNotFound
	}
	// One snapshot for both reads, so the events match the row.
	tx, err := m.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("mirror: message %s: %w", id, err)
	}
	defer tx.Rollback()
	e, err := scanEntry(tx.QueryRowContext(ctx, "SELECT "+entryColumns+" FROM messages m WHERE m.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("mirror: message %s: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx,
		"SELECT seq, kind, state, at, detail, device FROM message_events WHERE message_id = ? ORDER BY seq", id)
	if err != nil {
		return nil, nil, fmt.Errorf("mirror: message %s events: %w", id, err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var ev Event
		if err := rows.Scan(&ev.Seq, &ev.Kind, &ev.State, &ev.At, &ev.Detail, &ev.Device); err != nil {
			return nil, nil, fmt.Errorf("mirror: message %s events: %w", id, err)
		}
		events = append(events, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("mirror: message %s events: %w", id, err)
	}
	return e, events, nil
}

func scanEntry(row interface{ Scan(...any) error }) (*HistoryEntry, error) {
	var e HistoryEntry
	var delivered sql.NullTime
	err := row.Scan(&e.ID, &e.From, &e.To, &e.FromFull, &e.ContentType, &e.Body,
		&e.Received, &delivered, &e.State, &e.Attempts, &e.LastResult)
	if err != nil {
		return nil, err
	}
	if delivered.Valid {
		t := delivered.Time
		e.Delivered = &t
	}
	return &e, nil
}
