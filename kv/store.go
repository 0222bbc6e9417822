// Package kv is sipsilo's durable store: one bbolt file holding the messages, the
// per-recipient queues, the reachability cache and the mirror outbox. All writes go
// through one writer goroutine that commits many operations per transaction (group
// commit); a write returns only after the fsync that covers it.
package kv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrLocked means another process holds the database file (bbolt takes an
	// exclusive flock for as long as the file is open read-write).
	ErrLocked = errors.New("database file is locked by another process")
	// ErrCorrupt means the file is not a readable bbolt database of a known schema.
	ErrCorrupt = errors.New("database file is corrupt or not a sipsilo database")
	// ErrClosed is returned for writes submitted after Close.
	ErrClosed = errors.New("store is closed")
	// ErrNotFound is returned when a message id is unknown.
	ErrNotFound = errors.New("message not found")
)

// Options tune Open. The zero value is usable.
type Options struct {
	// LockTimeout bounds the wait for the file lock; bbolt waits forever without it.
	LockTimeout time.Duration
	// MaxBatch caps the operations committed in one transaction.
	MaxBatch int
	// ReadOnly opens the file for inspection, sharing it with other readers.
	ReadOnly bool
	// OpenFile replaces os.OpenFile (tests use it to hand bbolt an unwritable file).
	OpenFile func(string, int, os.FileMode) (*os.File, error)
	// NewStore lets Open start a new store in an existing empty file. Without it an
	// empty file is refused (ErrEmpty): where a store was expected it means lost
	// contents. A path that does not exist always becomes a new store.
	NewStore bool
	// Outbox makes every state change of a message append a record to the outbox
	// bucket in the same transaction, for the MySQL mirror. Off without a mirror.
	Outbox bool
	// TTL is how long a queued message may wait for delivery before it expires
	// (kv/policy.go); zero: messages never expire.
	TTL time.Duration
	// Quota caps each recipient's queued messages (Enqueue returns ErrQuota);
	// zero: no cap.
	Quota int
	// Journal puts the write-ahead journal (path + ".journal", a directory) in
	// front of bbolt: a write is answered once its record is durable there and
	// reaches bbolt within ApplyDelay (docs/decisions.md §34).
	Journal bool
	// JournalSegmentSize is one journal segment's size (default 32 MiB).
	JournalSegmentSize int64
	// ApplyDelay bounds how long journaled writes wait before one bbolt
	// transaction applies them (default 20 ms); the applier does not wait
	// when it is far behind.
	ApplyDelay time.Duration
	// OnApply, if set, is called on a goroutine of its own with the recipients
	// whose queues grew in each applied transaction: readers see a journaled
	// message only from then on.
	OnApply func(aors []string)
	// MapBudget is how much of the store's memory-mapped file may stay mapped
	// into the process before its pages are dropped (they stay in the page
	// cache; kv/trim.go); default 64 MiB of file-backed RSS (the binary's own
	// text counts too), negative: never dropped.
	MapBudget int64
	Logger    *slog.Logger
	Now       func() time.Time
}

// Store is the bbolt-backed message store.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
	now  func() time.Time
	ids  *idSource
	// order is set once Open has read the cores bucket.
	order *orderKeys

	outbox    bool
	ttl       time.Duration
	quota     int
	depth     *depths // queued messages per recipient, for the quota
	scanChunk int     // queue entries per read transaction of ExpireDue
	// filterScan is the most records of other states a filtered MessagePage
	// reads (maxFilterScan; tests make it small).
	filterScan int
	refused    atomic.Uint64
	maxBatch   int
	ops        chan *op
	quit       chan struct{}
	done       chan struct{}
	trimDone   chan struct{} // closed by runTrim; nil without it
	closeOnce  sync.Once
	commits    atomic.Uint64
	counts     counts

	// The journal, its appender and applier (kv/journal_store.go).
	j           *journal
	jmu         sync.Mutex // guards j between the appender, the applier and JournalSyncs
	ov          *overlay
	jv          *view // the appender's, reused for every group
	aq          *applyQueue
	appliedSeq  atomic.Uint64 // seq of the last record bbolt holds
	appendedSeq atomic.Uint64 // seq of the last record appended
	applyDelay  time.Duration
	onApply     func(aors []string)
	wakes       chan []string // to runWaker
	wakerDone   chan struct{}
	applierDone chan struct{}
	spareWanted chan struct{} // cap 1: the sparer has a segment to prepare
	sparerDone  chan struct{}
	replayed    int
	unapplied   int // read-only: journal records the file lacks
}

// Open opens the database at path, creating it if the path does not exist, and
// starts its writer. The file is checked before bbolt reads it (checkFile): a
// damaged file is refused with ErrCorrupt instead of crashing the process.
func Open(path string, o Options) (*Store, error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f, err := openChecked(path, o)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  o.LockTimeout,
		ReadOnly: o.ReadOnly,
		// bbolt gets the file checked and locked above, closing it on failure.
		OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil },
		// Queue churn frees pages on every delivery; without these bbolt rewrites the
		// whole freelist in each commit (etcd-io/bbolt#401). The price is a freelist
		// rebuild when the file is opened.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// NoSync stays false: a message is acknowledged only once it is on disk.
	})
	if err != nil {
		return nil, openError(path, err)
	}
	s := &Store{
		db: db, path: path, log: o.Logger, now: o.Now, ids: newIDSource(),
		maxBatch: o.MaxBatch, outbox: o.Outbox, ttl: max(o.TTL, 0), quota: max(o.Quota, 0), scanChunk: defaultScanChunk,
		filterScan: maxFilterScan,
		ops:        make(chan *op, o.MaxBatch),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if err := s.initSchema(o.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	replayOnly := false
	if !o.Journal && !o.ReadOnly {
		// A journal left by a run with one still holds acknowledged messages:
		// they are applied, and the store runs on without it.
		if _, err := os.Stat(path + ".journal"); err == nil {
			o.Journal, o.OnApply, replayOnly = true, nil, true
		}
	}
	if o.Journal && !o.ReadOnly {
		// Replayed before the counts below are taken, which then include it. The
		// replay writes each recipient's new depth to the depths bucket, so it
		// starts from the depths the file holds.
		s.counts.finished = map[State]uint64{}
		if err := db.View(func(tx *bolt.Tx) error {
			var err error
			s.depth, err = loadDepths(tx)
			return err
		}); err != nil {
			db.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		s.applyDelay, s.onApply = o.ApplyDelay, o.OnApply
		if s.applyDelay <= 0 {
			s.applyDelay = defaultApplyDelay
		}
		if err := s.recoverJournal(o); err != nil {
			db.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	err = db.View(func(tx *bolt.Tx) error {
		s.order = loadOrderKeys(tx)
		var err error
		s.depth, err = loadDepths(tx)
		s.depth.applied = s.appliedSeq.Load()
		s.counts.finished = make(map[State]uint64)
		return err
	})
	if err != nil {
		if s.j != nil {
			s.j.close()
		}
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if o.ReadOnly {
		s.readUnapplied()
		close(s.done)
		return s, nil
	}
	if replayOnly {
		s.j.close()
		s.j = nil
	}
	if o.MapBudget >= 0 {
		s.trimDone = make(chan struct{})
		go s.runTrim(cmp.Or(o.MapBudget, defaultTrimBudget))
	}
	if s.j != nil {
		s.wakes, s.wakerDone = make(chan []string, 16), make(chan struct{})
		s.ov, s.aq, s.applierDone = newOverlay(), newApplyQueue(), make(chan struct{})
		s.spareWanted, s.sparerDone = make(chan struct{}, 1), make(chan struct{})
		s.j.spares = make(chan string, 1)
		if s.onApply != nil {
			go s.runWaker()
		} else {
			close(s.wakerDone)
		}
		go s.runJournal()
		return s, nil
	}
	go s.run()
	return s, nil
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("open %s: %w (is sipsilo serve running? its admin API gives the live view)", path, ErrLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch):
		return fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	}
	return fmt.Errorf("open %s: %w", path, err)
}

func (s *Store) initSchema(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		v := meta.Get(keySchema)
		if v == nil {
			return nil
		}
		if n, err := strconv.Atoi(string(v)); err != nil || n < schemaJSON || n > SchemaVersion {
			return fmt.Errorf("open %s: %w: schema version %q, this sipsilo reads %d to %d", s.path, ErrCorrupt, v,
				schemaJSON, SchemaVersion)
		}
		return nil
	}
	ready := false
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		ready = tx.Bucket(bucketMeta) != nil && string(tx.Bucket(bucketMeta).Get(keySchema)) == strconv.Itoa(SchemaVersion)
		for _, name := range allBuckets {
			ready = ready && tx.Bucket(name) != nil
		}
		return nil
	})
	// An initialised file is opened without writing, so that opening does not depend
	// on the file being writable: a store that cannot write still serves reads and
	// its writes fail one by one, visibly.
	if err != nil || ready || readOnly {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		hadDepths := tx.Bucket(bucketDepths) != nil
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if !hadDepths {
			if err := migrateDepths(tx); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if string(meta.Get(keySchema)) != strconv.Itoa(SchemaVersion) {
			return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
		}
		return nil
	})
}

// Commits counts the write transactions attempted so far (for metrics and tests).
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Durable reports whether every commit is fsynced; sipsilo never runs otherwise.
func (s *Store) Durable() bool { return !s.db.NoSync }

// Close stops the writer once it has committed what was already submitted, then closes
// the file. It gives up waiting for the writer when ctx ends.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.quit) })
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("close store: writer still committing: %w", ctx.Err())
	}
	if s.wakerDone != nil {
		select {
		case <-s.wakerDone:
		case <-ctx.Done():
			return fmt.Errorf("close store: OnApply still running: %w", ctx.Err())
		}
	}
	if s.trimDone != nil {
		select {
		case <-s.trimDone:
		case <-ctx.Done():
			return fmt.Errorf("close store: trimmer still running: %w", ctx.Err())
		}
	}
	s.writeFreelist()
	return s.db.Close()
}

// writeFreelist commits the free list once, as the store closes, so that the
// next Open reads it from its page instead of rebuilding it by walking every
// page of the file (NoFreelistSync, docs/decisions.md §35): the walk is most of
// an open at a million queued. The next commit marks it stale again, so after a
// crash the free list is rebuilt, as before. A failure costs only that rebuild.
func (s *Store) writeFreelist() {
	if s.db.IsReadOnly() {
		return
	}
	s.db.NoFreelistSync = false // the writer has stopped: nothing else commits
	err := s.db.Update(func(*bolt.Tx) error { return nil })
	if err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) { // closed already: a second Close
		s.log.Warn("free list not written at close; the next open rebuilds it", "err", err)
	}
	s.db.NoFreelistSync = true
}
