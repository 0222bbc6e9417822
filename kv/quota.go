package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// ErrQuota is returned by Enqueue when the recipient already has Options.Quota
// messages queued. Nothing was stored: the chatplan answers "not found" and
// FreeSWITCH delivers the message as stock (docs/architecture.md, "Intake").
var ErrQuota = errors.New("recipient's queue is full")

// depths counts each recipient's queued messages, so that the quota is one map
// lookup inside the writer's transaction instead of a scan of the queue. The
// counts follow the queue bucket exactly: they are changed only where a queue
// entry is put or deleted, in the same transaction, which also writes the new
// count to the depths bucket; the in-memory copy takes a transaction's changes
// when it commits (bbolt's OnCommit) and drops them when it rolls back. Open
// reads the depths bucket, one key per recipient, instead of every queue key
// (docs/decisions.md §35).
type depths struct {
	mu  sync.Mutex
	n   map[string]int // committed counts
	sum int            // committed total

	// applied is the journal position the committed counts include
	// (docs/decisions.md §34): the appender adds what comes after it.
	applied uint64

	// The open write transaction's changes. Only the writer goroutine touches
	// them (every write transaction runs there).
	tx    *bolt.Tx
	delta *txDelta
	// lazy is a transaction that writes each recipient's count to the depths
	// bucket once, at flush, rather than at every change: the applier's,
	// which replays hundreds of messages for a few recipients.
	lazy  *bolt.Tx
	dirty map[string]struct{}
}

// txDelta is one write transaction's changes to the counts, and the journal
// position it commits with (stamp), applied with them under one lock.
type txDelta struct {
	n   map[string]int
	seq uint64
}

// loadDepths reads the depths bucket; a file without one (schema 2 or older,
// opened read-only) has its queue counted instead (countDepths).
func loadDepths(tx *bolt.Tx) (*depths, error) {
	b := tx.Bucket(bucketDepths)
	if b == nil {
		return countDepths(tx)
	}
	d := &depths{n: map[string]int{}}
	err := b.ForEach(func(k, v []byte) error {
		n, w := binary.Uvarint(v)
		if w <= 0 || w != len(v) || n > 1<<40 {
			return fmt.Errorf("%w: depth of %q: %x", ErrCorrupt, k, v)
		}
		if n > 0 {
			d.n[string(k)] = int(n)
			d.sum += int(n)
		}
		return nil
	})
	return d, err
}

// countDepths counts the queue bucket's entries per recipient. It reads every
// key once (no message is decoded): at open of a file without a depths bucket,
// and to migrate one (migrateDepths).
func countDepths(tx *bolt.Tx) (*depths, error) {
	d := &depths{n: map[string]int{}}
	b := tx.Bucket(bucketQueue)
	if b == nil {
		return d, nil // an empty file opened read-only
	}
	// A recipient's entries are one contiguous key range: its name is made a
	// string once per recipient, not once per entry (docs/decisions.md §35).
	var prefix []byte
	var aor string
	count := 0
	err := b.ForEach(func(k, _ []byte) error {
		if prefix != nil && len(k) >= len(prefix)+16 && bytes.HasPrefix(k, prefix) {
			count++
			return nil
		}
		a, _, _, err := parseQueueKey(k)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if prefix != nil {
			d.n[aor] += count
		}
		aor, prefix, count = a, queuePrefix(a), 1
		return nil
	})
	if prefix != nil {
		d.n[aor] += count
	}
	for _, c := range d.n {
		d.sum += c
	}
	return d, err
}

// migrateDepths fills the depths bucket of a file of an earlier schema from a
// count of its queue, in the transaction that marks the file SchemaVersion.
func migrateDepths(tx *bolt.Tx) error {
	d, err := countDepths(tx)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketDepths)
	for aor, n := range d.n {
		if err := b.Put([]byte(aor), binary.AppendUvarint(nil, uint64(n))); err != nil {
			return fmt.Errorf("migrate depth of %q: %w", aor, err)
		}
	}
	return nil
}

// get returns aor's queued count as tx sees it.
func (d *depths) get(tx *bolt.Tx, aor string) int {
	d.mu.Lock()
	n := d.n[aor]
	d.mu.Unlock()
	if d.tx == tx {
		n += d.delta.n[aor]
	}
	return n
}

// add records that tx put (+1) or deleted (-1) one of aor's queue entries, and
// writes aor's new count to the depths bucket in tx.
func (d *depths) add(tx *bolt.Tx, aor string, v int) error {
	d.begin(tx)
	d.delta.n[aor] += v
	if d.lazy == tx {
		d.dirty[aor] = struct{}{}
		return nil
	}
	return d.write(tx, aor)
}

// write stores aor's count as tx sees it in the depths bucket.
func (d *depths) write(tx *bolt.Tx, aor string) error {
	b := tx.Bucket(bucketDepths)
	if b == nil {
		return fmt.Errorf("%w: depths bucket missing", ErrCorrupt)
	}
	if n := d.get(tx, aor); n > 0 {
		var buf [binary.MaxVarintLen64]byte
		return b.Put([]byte(aor), binary.AppendUvarint(buf[:0], uint64(n)))
	}
	return b.Delete([]byte(aor)) // a recipient whose queue emptied costs nothing
}

// deferWrites makes add in tx write the counts only at flush, which tx must
// call before it commits.
func (d *depths) deferWrites(tx *bolt.Tx) {
	d.lazy = tx
	if d.dirty == nil {
		d.dirty = map[string]struct{}{}
	}
	clear(d.dirty)
}

// flush writes the counts tx changed since deferWrites.
func (d *depths) flush(tx *bolt.Tx) error {
	d.lazy = nil
	defer clear(d.dirty)
	for aor := range d.dirty {
		if err := d.write(tx, aor); err != nil {
			return err
		}
	}
	return nil
}

func (d *depths) begin(tx *bolt.Tx) {
	if d.tx != tx {
		d.tx, d.delta = tx, &txDelta{n: map[string]int{}}
		delta := d.delta
		tx.OnCommit(func() { d.apply(delta) })
	}
}

// stamp says that tx holds the journal up to seq: once it commits, the counts
// and that position change together.
func (d *depths) stamp(tx *bolt.Tx, seq uint64) {
	d.begin(tx)
	d.delta.seq = seq
}

// committedAt returns aor's committed count and the journal position it
// includes, read together.
func (d *depths) committedAt(aor string) (int, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[aor], d.applied
}

func (d *depths) apply(delta *txDelta) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied = max(d.applied, delta.seq)
	for aor, v := range delta.n {
		d.sum += v
		if n := d.n[aor] + v; n > 0 {
			d.n[aor] = n
		} else {
			delete(d.n, aor) // a recipient whose queue emptied costs nothing
		}
	}
}

// total returns every recipient's count as of the last commit.
func (d *depths) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sum
}

// committed returns aor's count as of the last commit.
func (d *depths) committed(aor string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[aor]
}

// Depth returns how many messages aor has queued, as of the last commit.
func (s *Store) Depth(aor string) int { return s.depth.committed(aor) }

// QuotaRefusals counts the messages Enqueue refused with ErrQuota since Open.
func (s *Store) QuotaRefusals() uint64 { return s.refused.Load() }

// Quota is the per-recipient cap on queued messages (0: none).
func (s *Store) Quota() int { return s.quota }
