// Package mirror copies every message and state change from the kv outbox
// into MySQL or MariaDB for history, and answers history queries from
// there.
//
// The outbox is at-least-once: a batch is written in one transaction with
// idempotent upserts, and only then deleted from the outbox. Replaying any
// records changes nothing, and a messages row never moves back to an older
// snapshot. Delivery never waits for the mirror: it only appends to the
// outbox, and Run retries with backoff while the database is down.
package mirror

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Record is one outbox entry: a change of a message and the message's
// snapshot after it. kv produces them.
type Record struct {
	Seq      uint64 // outbox key, increasing
	MsgID    string // a ULID: 26 ASCII characters
	EventSeq int    // per-message event number, 1, 2, 3… (unique per MsgID)
	Kind     string // received, body, attempt, delivered, released, dead, no_body, expired, purged
	At       time.Time
	Detail   string // free text (result of an attempt, reason)
	Device   string // the device whose copy changed (docs/decisions.md §29); empty: the message

	// Snapshot of the message after the change.
	From, To, FromFull, ContentType, State, LastResult string
	Body                                               []byte // nil when this record does not carry the body
	Received                                           time.Time
	Delivered                                          time.Time // zero if not delivered
	Attempts                                           int
}

// Outbox is the source the mirror drains; kv implements it.
type Outbox interface {
	// OutboxBatch returns up to maxRecords records (and about maxBytes),
	// oldest first.
	OutboxBatch(maxRecords, maxBytes int) ([]Record, error)
	// OutboxDelete deletes every record with Seq <= upTo.
	OutboxDelete(ctx context.Context, upTo uint64) error
}

// Config configures a Mirror.
type Config struct {
	DSN        *mysql.Config // required; Open works on a copy
	BatchRows  int           // records per transaction; default 500
	BatchBytes int           // about this many bytes per transaction and statement; default 1 MiB
	Interval   time.Duration // poll interval when the outbox is empty; default 100 ms
	BackoffMin time.Duration // first retry delay while the database fails; default 200 ms
	BackoffMax time.Duration // longest retry delay; default 10 s
	Logger     *slog.Logger  // default: discard
}

// ErrNotFound is returned by Message for an unknown id.
var ErrNotFound = errors.New("mirror: message not found")

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("mirror: closed")

// Stats describe the writer's progress.
type Stats struct {
	Records   uint64        // outbox records committed
	Rows      uint64        // rows sent to the database: message upserts plus events
	Batches   uint64        // transactions committed
	Errors    uint64        // failed attempts (reading, writing or deleting)
	Skipped   uint64        // records that can never be stored (bad id), logged and dropped
	LastError string        // the most recent error, "" after a success
	Lag       time.Duration // age of the oldest record of the last batch when it committed
}

// Mirror writes outbox records into the database and reads history back.
type Mirror struct {
	cfg Config
	db  *sql.DB
	log *slog.Logger

	// done ends every Run when Close is called.
	done   context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed, wg.Add and stats
	closed bool
	wg     sync.WaitGroup
	stats  Stats
}

// Open connects, runs the schema migrations and returns a Mirror. On its
// copy of cfg.DSN it sets ParseTime, InterpolateParams (one round trip per
// statement) and, where unset, UTC and timeouts.
func Open(ctx context.Context, cfg Config) (*Mirror, error) {
	if cfg.DSN == nil {
		return nil, errors.New("mirror: no DSN")
	}
	cfg = withDefaults(cfg)
	dsn := cfg.DSN.Clone()
	dsn.ParseTime = true
	dsn.InterpolateParams = true
	if dsn.Loc == nil {
		dsn.Loc = time.UTC
	}
	if dsn.Timeout == 0 {
		dsn.Timeout = 5 * time.Second
	}
	if dsn.ReadTimeout == 0 {
		dsn.ReadTimeout = 30 * time.Second
	}
	if dsn.WriteTimeout == 0 {
		dsn.WriteTimeout = 30 * time.Second
	}
	cfg.DSN = dsn
	connector, err := mysql.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxLifetime(3 * time.Minute)
	db.SetConnMaxIdleTime(time.Minute)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("mirror: migrate: %w", err)
	}
	done, cancel := context.WithCancel(context.Background())
	return &Mirror{cfg: cfg, db: db, log: cfg.Logger, done: done, cancel: cancel}, nil
}

func withDefaults(cfg Config) Config {
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 500
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 1 << 20
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 200 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Close stops every Run, waits for them and closes the connections.
// Records not yet committed stay in the outbox.
func (m *Mirror) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return m.db.Close()
}

// Stats returns a snapshot of the writer's counters.
func (m *Mirror) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}
