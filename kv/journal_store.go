package kv

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// How the store uses its journal (docs/decisions.md §34). Two goroutines: the
// appender takes the operations, decides each against bbolt as committed plus
// the records not yet applied (kv/journal_view.go), appends the records of a
// group with one fdatasync and answers; the applier replays appended records
// into bbolt in large transactions, storing the position of the last in the
// same transaction (keyApplied), then frees the segments bbolt now holds and
// wakes the relay. A bbolt commit is never on an answer's path. An operation
// without records (reachability, the outbox's deletes, Ping, PurgeQueue) runs
// in the applier's order after every record before it and is answered once
// bbolt has committed it. Records are deterministic given the state before
// them, and replaying one bbolt holds changes nothing.

// Journal record kinds: the first byte of a record.
const (
	recEnqueue byte = 'E' // a new message: its encoded record
	recRelease byte = 'R' // a queued message released (releaseRec): read, no longer written
	// recChange: a message's new record whole, after a state change, then the
	// outbox record of the change (if any):
	//	'C' | len(record) uint32 BE | record | outbox record
	recChange byte = 'C'
	// recNoop changes nothing: Ping appends one to prove the journal takes
	// records (a segment can be started).
	recNoop byte = 'N'
)

// keyApplied in the meta bucket holds the seq of the last journal record that
// bbolt holds (8 bytes BE).
var keyApplied = []byte("journal-applied")

// ErrJournalGap is returned by Open when the bbolt file is older than what the
// journal beside it still holds (docs/decisions.md §34).
var ErrJournalGap = errors.New("journal: the database file is older than its journal")

const defaultApplyDelay = 20 * time.Millisecond

// Bounds on what the applier may fall behind: past them the appender waits for
// it (back-pressure; its callers' deadlines bound the wait), so the overlay's
// memory is bounded.
const (
	maxUnappliedRecords = 1 << 16
	maxUnappliedBytes   = 64 << 20
	// maxApplyRecords bounds one bbolt transaction of the applier.
	maxApplyRecords = 8192
)

type releaseRec struct {
	ID     string    `json:"id"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func releaseRecord(id, reason string, at time.Time) []byte {
	b, _ := json.Marshal(releaseRec{ID: id, Reason: reason, At: at}) // cannot fail
	return append([]byte{recRelease}, b...)
}

// replayRecord applies one journal record in tx. Replaying a record bbolt
// already holds changes nothing: a message id is stored once, and a release
// changes only a queued message.
func (s *Store) replayRecord(tx *bolt.Tx, p []byte) error {
	if len(p) == 0 {
		return errors.New("empty journal record")
	}
	switch p[0] {
	case recEnqueue:
		decode := decodeMessage
		if !s.outbox && len(p) > 1 && p[1] != '{' {
			decode = peekQueued // the outbox record alone needs the whole message
		}
		m, err := decode(p[1:])
		if err != nil {
			return fmt.Errorf("journal record: %w: %v", ErrCorrupt, err)
		}
		if tx.Bucket(bucketMessages).Get([]byte(m.ID)) != nil {
			return nil
		}
		qk, err := queueKey(m.To, m.Order, m.ID)
		if err != nil {
			return err
		}
		obx, err := s.receivedRecord(m)
		if err != nil {
			return err
		}
		return s.enqueueTx(tx, &enqueueWrite{m: m, rec: p[1:], obx: obx, qk: qk}, true)
	case recChange:
		return s.replayChange(tx, p)
	case recNoop:
		return nil
	case recRelease:
		var r releaseRec
		if err := json.Unmarshal(p[1:], &r); err != nil {
			return fmt.Errorf("journal record: %w: %v", ErrCorrupt, err)
		}
		err := s.setState(tx, r.ID, StateReleased, r.Reason, r.At)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return fmt.Errorf("journal record of unknown kind %q: %w", p[0], ErrCorrupt)
}

// replayChange stores a recChange record's message. The queue entry follows
// the state the record and bbolt's copy have; the outbox record is appended
// again by a replay of a record bbolt already holds, which the mirror takes
// once by (message id, event number).
func (s *Store) replayChange(tx *bolt.Tx, p []byte) error {
	if len(p) < 5 || int(binary.BigEndian.Uint32(p[1:])) > len(p)-5 {
		return fmt.Errorf("journal record: %w: short change", ErrCorrupt)
	}
	n := int(binary.BigEndian.Uint32(p[1:]))
	rec, obx := p[5:5+n], p[5+n:]
	m, err := decodeMessage(rec)
	if err != nil {
		return fmt.Errorf("journal record: %w: %v", ErrCorrupt, err)
	}
	msgs := tx.Bucket(bucketMessages)
	wasQueued := false
	if old := msgs.Get([]byte(m.ID)); old != nil {
		st, err := peekState(old)
		if err != nil {
			return fmt.Errorf("message %q: %w: %v", m.ID, ErrCorrupt, err)
		}
		wasQueued = st == StateQueued
	}
	if wasQueued != (m.State == StateQueued) {
		if err := s.moveQueueEntry(tx, m); err != nil {
			return err
		}
	}
	if len(obx) > 0 {
		if err := putOutbox(tx, obx); err != nil {
			return err
		}
	}
	return msgs.Put([]byte(m.ID), rec)
}

// recoverJournal opens the journal beside the database and applies to bbolt the
// records it lacks, in transactions of up to chunk records.
func (s *Store) recoverJournal(o Options) error {
	var applied uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyApplied); len(v) == 8 {
			applied = be64(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	dir := s.path + ".journal"
	j, recs, err := openJournal(dir, o.JournalSegmentSize, applied)
	if err != nil {
		return err
	}
	cp, err := readCheckpoint(dir)
	if err != nil {
		j.close()
		return err
	}
	if len(recs) > 0 && recs[0].seq > applied+1 || len(recs) == 0 && cp > applied {
		// bbolt is older than the journal: a copy restored beside it. The
		// records between were recycled once a newer file held them; replaying
		// the rest onto this copy would bring back messages delivered since.
		j.close()
		first := cp + 1
		if len(recs) > 0 {
			first = recs[0].seq
		}
		return fmt.Errorf("%w: the file holds the journal up to record %d, the journal (%s) keeps only records from %d on "+
			"(a newer copy of the file held them); restore the newer file, or move the journal aside to run on this copy as it is",
			ErrJournalGap, applied, dir, first)
	}
	const chunk = 4096
	for len(recs) > 0 {
		n := min(chunk, len(recs))
		err := s.db.Update(func(tx *bolt.Tx) error {
			s.depth.deferWrites(tx)
			for _, r := range recs[:n] {
				if err := s.replayRecord(tx, r.payload); err != nil {
					s.log.Error("journal: record not replayed", "seq", r.seq, "err", err)
				}
			}
			if err := s.depth.flush(tx); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(keyApplied, u64(recs[n-1].seq))
		})
		if err != nil {
			j.close()
			return fmt.Errorf("journal replay: %w", err)
		}
		s.replayed += n
		applied = recs[n-1].seq
		recs = recs[n:]
	}
	s.j = j
	if err := j.release(applied, s.checkpoint); err != nil {
		j.close()
		return err
	}
	s.appliedSeq.Store(applied)
	s.appendedSeq.Store(applied)
	return nil
}

// Unapplied counts, for a store opened read-only, the records of a journal beside
// the file that the file does not hold yet: a daemon with the journal ended
// before applying them, and its next start will.
func (s *Store) Unapplied() int { return s.unapplied }

// readUnapplied, for a read-only open, reads the journal records the file
// lacks into an overlay, so that Get, All, Queue and QueueScan show each
// message in its newest state without changing the file or the journal.
func (s *Store) readUnapplied() {
	var applied uint64
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get(keyApplied); len(v) == 8 {
				applied = be64(v)
			}
		}
		return nil
	})
	recs, err := unappliedRecords(s.path, applied)
	if err != nil {
		s.log.Warn("journal beside the file not read", "err", err)
		return
	}
	s.unapplied = len(recs)
	if len(recs) == 0 {
		return
	}
	ov := newOverlay()
	err = s.db.View(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketMessages)
		for _, r := range recs {
			id, rec, err := s.recordState(r.payload, func(id string) []byte {
				if e, ok := ov.msgs[id]; ok {
					return e.rec
				}
				if msgs == nil {
					return nil
				}
				return msgs.Get([]byte(id))
			})
			if err != nil {
				s.log.Warn("journal record not read", "seq", r.seq, "err", err)
				continue
			}
			if rec != nil {
				ov.msgs[id] = ovMsg{seq: r.seq, rec: rec}
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("journal beside the file not read", "err", err)
		return
	}
	// The queued messages bbolt's queue lacks are merged into queue reads.
	s.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		for id, e := range ov.msgs {
			m, err := decodeMessage(e.rec)
			if err != nil || m.State != StateQueued {
				continue
			}
			qk, err := queueKey(m.To, m.Order, m.ID)
			if err != nil || q != nil && q.Get(qk) != nil {
				continue
			}
			if ov.fresh[m.To] == nil {
				ov.fresh[m.To] = map[string]ovFresh{}
			}
			ov.fresh[m.To][id] = ovFresh{seq: e.seq, qk: qk}
		}
		return nil
	})
	s.ov = ov
}

// recordState returns the message a record leaves and its record (nil: the
// record changes nothing); old reads a message's record before it.
func (s *Store) recordState(p []byte, old func(id string) []byte) (string, []byte, error) {
	if len(p) == 0 {
		return "", nil, errors.New("empty journal record")
	}
	switch p[0] {
	case recEnqueue:
		m, err := decodeMessage(p[1:])
		if err != nil {
			return "", nil, err
		}
		return m.ID, p[1:], nil
	case recChange:
		if len(p) < 5 || int(binary.BigEndian.Uint32(p[1:])) > len(p)-5 {
			return "", nil, fmt.Errorf("journal record: %w: short change", ErrCorrupt)
		}
		rec := p[5 : 5+binary.BigEndian.Uint32(p[1:])]
		m, err := decodeMessage(rec)
		if err != nil {
			return "", nil, err
		}
		return m.ID, rec, nil
	case recNoop:
		return "", nil, nil
	case recRelease:
		var r releaseRec
		if err := json.Unmarshal(p[1:], &r); err != nil {
			return "", nil, err
		}
		v := old(r.ID)
		if v == nil {
			return "", nil, nil
		}
		m, err := decodeMessage(v)
		if err != nil || m.State != StateQueued {
			return "", nil, err
		}
		m.State, m.Reason, m.Updated = StateReleased, r.Reason, r.At
		rec, err := encodeMessage(m)
		return r.ID, rec, err
	}
	return "", nil, fmt.Errorf("journal record of unknown kind %q: %w", p[0], ErrCorrupt)
}

// Replayed counts the journal records recovery applied to bbolt at Open.
func (s *Store) Replayed() int { return s.replayed }

// JournalSyncs counts the journal's fdatasync calls since Open (0 without one).
func (s *Store) JournalSyncs() uint64 {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	if s.j == nil {
		return 0
	}
	return s.j.syncs
}

// unit is what the appender hands the applier: the records of one appended
// group, or one operation without records.
type unit struct {
	recs  [][]byte
	last  uint64 // seq of the last of recs
	bytes int
	aors  []string // recipients whose queues grew
	raw   *op
	done  chan struct{} // closed once raw is applied (barrier)
	at    time.Time
}

// applyQueue is the units appended and not yet applied, oldest first.
type applyQueue struct {
	mu       sync.Mutex
	units    []*unit
	recs     int // records in units
	bytes    int
	closed   bool          // the appender ended: apply what is left, then stop
	urgent   bool          // apply now rather than after ApplyDelay
	signal   chan struct{} // cap 1: units added, closed or urgent
	progress chan struct{} // closed and replaced after each applied transaction
	// The bounds of full: maxUnappliedRecords and maxUnappliedBytes (tests
	// lower them).
	maxRecs, maxBytes int
}

func newApplyQueue() *applyQueue {
	return &applyQueue{signal: make(chan struct{}, 1), progress: make(chan struct{}),
		maxRecs: maxUnappliedRecords, maxBytes: maxUnappliedBytes}
}

func (q *applyQueue) kick() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *applyQueue) push(u *unit) {
	q.mu.Lock()
	q.units = append(q.units, u)
	q.recs += len(u.recs)
	q.bytes += u.bytes
	if u.raw != nil {
		q.urgent = true
	}
	q.mu.Unlock()
	q.kick()
}

// full reports whether the applier is too far behind, and the channel closed
// at its next progress.
func (q *applyQueue) full() (bool, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.recs < q.maxRecs && q.bytes < q.maxBytes {
		return false, nil
	}
	q.urgent = true
	return true, q.progress
}

// runJournal is the appender (see the top of this file); it starts the applier
// and ends it once it has handed over everything submitted before Close.
func (s *Store) runJournal() {
	defer close(s.done)
	go s.runApplier()
	go s.runSparer()
	var carry []*op
	for {
		batch := carry
		carry = nil
		if len(batch) == 0 {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			case <-s.quit:
				s.drainJournal()
				return
			}
		}
		s.backPressure()
		batch = s.fill(batch)
		carry = s.appendOps(batch)
	}
}

// backPressure waits while the applier is too far behind, until Close.
func (s *Store) backPressure() {
	for {
		full, progress := s.aq.full()
		if !full {
			return
		}
		s.aq.kick()
		select {
		case <-progress:
		case <-s.quit:
			return
		}
	}
}

func (s *Store) drainJournal() {
	var carry []*op
	for {
		batch := s.fill(carry)
		if len(batch) == 0 {
			break
		}
		carry = s.appendOps(batch)
	}
	s.aq.mu.Lock()
	s.aq.closed = true
	s.aq.mu.Unlock()
	s.aq.kick()
	<-s.applierDone
	<-s.sparerDone
	s.jmu.Lock()
	s.j.close()
	s.jmu.Unlock()
}

// runSparer prepares the journal's next segment ahead of need, at the start
// and once half of the current one is used, so that an append that starts a
// segment renames a file instead of writing one: 32 MiB of zeros and a sync
// took 0.1–0.9 s on a busy disk, with every caller waiting behind it. An
// append that finds none ready starts a short one (inlineSegment).
func (s *Store) runSparer() {
	defer close(s.sparerDone)
	for {
		s.jmu.Lock()
		want := s.j.wantsSpare()
		s.jmu.Unlock()
		if want {
			path, err := prepareSpare(s.j.dir, s.j.segSize)
			if err != nil {
				s.log.Debug("journal: next segment not prepared ahead", "err", err)
			}
			s.j.spares <- path // never blocks: wantsSpare saw it empty, and only this sends
		}
		select {
		case <-s.spareWanted:
		case <-s.quit:
			return
		}
	}
}

// appendOps decides batch's ops in order, appends the records of each run of
// them with one fdatasync and answers them; an op without records goes to the
// applier in its place.
func (s *Store) appendOps(batch []*op) (undo []*op) {
	s.ov.prune(s.appliedSeq.Load())
	if s.jv == nil {
		s.jv = newView(s)
	}
	v := s.jv
	var group []*op
	flush := func() {
		undo = append(undo, s.appendGroup(v, group)...)
		group = group[:0]
	}
	for _, o := range batch {
		if !o.state.CompareAndSwap(opPending, opCommitting) {
			continue
		}
		if o.decide == nil {
			flush()
			u := &unit{raw: o, at: time.Now()}
			if o.barrier {
				u.done = make(chan struct{})
			}
			s.aq.push(u)
			if u.done != nil {
				select {
				case <-u.done:
				case <-s.applierDone:
				}
				s.ov.prune(s.appliedSeq.Load())
			}
			continue
		}
		if err := o.decide(v); err != nil {
			v.drop()
			undo = append(undo, s.finish(o, err)...)
			continue
		}
		v.keep()
		group = append(group, o)
	}
	flush()
	return undo
}

// appendGroup appends the view's records with one fdatasync, hands them to the
// applier and answers group's ops.
func (s *Store) appendGroup(v *view, group []*op) (undo []*op) {
	v.release()
	var err error
	if len(v.recs) > 0 {
		s.jmu.Lock()
		last, aerr := s.j.append(v.recs)
		spare := s.j.wantsSpare()
		s.jmu.Unlock()
		if aerr != nil {
			err = aerr
		} else {
			if spare {
				select {
				case s.spareWanted <- struct{}{}:
				default:
				}
			}
			s.appendedSeq.Store(last)
			s.ov.add(last, v.msgs, v.deltas, v.fresh)
			u := &unit{recs: v.recs, last: last, at: time.Now()}
			for _, p := range v.recs {
				u.bytes += len(p)
			}
			for aor := range v.grown {
				u.aors = append(u.aors, aor)
			}
			s.aq.push(u)
		}
	}
	v.reset()
	for _, o := range group {
		undo = append(undo, s.finish(o, err)...)
	}
	return undo
}

// runApplier moves appended records into bbolt (see the top of this file).
func (s *Store) runApplier() {
	defer close(s.applierDone)
	defer close(s.wakes)
	q := s.aq
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	backoff := time.Duration(0)
	wake := map[string]struct{}{}
	for {
		q.mu.Lock()
		n, closed, urgent := len(q.units), q.closed, q.urgent
		var oldest time.Time
		if n > 0 {
			oldest = q.units[0].at
			urgent = urgent || q.units[0].raw != nil || q.recs >= maxApplyRecords
		}
		q.mu.Unlock()
		if n == 0 {
			if closed {
				return
			}
			<-q.signal
			continue
		}
		if wait := s.applyDelay - time.Since(oldest); !closed && !urgent && wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-q.signal:
				timer.Stop()
			}
			continue
		}
		take := s.takeUnits()
		var err error
		if take[0].raw != nil {
			err = s.applyRaw(take[0])
		} else {
			err = s.applyRecords(take)
		}
		if err != nil {
			// The operations without records waiting behind the records fail
			// with them (a full disk fails them too): their callers, Ping
			// among them, hear it now rather than at their deadlines.
			s.failRaw(err)
			if closed {
				// Close with bbolt failing: the journal keeps the records for
				// the next Open.
				return
			}
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			timer.Reset(backoff)
			select {
			case <-timer.C:
			case <-s.quit:
				timer.Stop()
			}
			continue
		}
		backoff = 0
		q.mu.Lock()
		for _, u := range take {
			q.recs -= len(u.recs)
			q.bytes -= u.bytes
			for _, a := range u.aors {
				wake[a] = struct{}{}
			}
		}
		q.units = q.units[len(take):]
		q.urgent = false
		close(q.progress)
		q.progress = make(chan struct{})
		q.mu.Unlock()
		if s.onApply != nil && len(wake) > 0 {
			aors := make([]string, 0, len(wake))
			for a := range wake {
				aors = append(aors, a)
			}
			select {
			case s.wakes <- aors:
				clear(wake)
			default: // the waker is behind: these go with the next apply
			}
		}
	}
}

// takeUnits returns the units of the next transaction: one operation without
// records, or a run of record units of at most maxApplyRecords records (at
// least one unit).
func (s *Store) takeUnits() []*unit {
	q := s.aq
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.units[0].raw != nil {
		return q.units[:1:1]
	}
	n, recs := 0, 0
	for n < len(q.units) && q.units[n].raw == nil && (n == 0 || recs+len(q.units[n].recs) <= maxApplyRecords) {
		recs += len(q.units[n].recs)
		n++
	}
	return q.units[:n:n]
}

// applyRecords replays take's records in one bbolt transaction with the
// position of the last, then frees the journal segments bbolt now holds.
func (s *Store) applyRecords(take []*unit) error {
	last := take[len(take)-1].last
	s.commits.Add(1)
	err := s.db.Update(func(tx *bolt.Tx) error {
		s.depth.deferWrites(tx)
		for _, u := range take {
			for _, p := range u.recs {
				if err := s.replayRecord(tx, p); err != nil {
					// Not a disk's failure (those come at the commit): a record
					// that cannot be replayed is never going to be.
					s.log.Error("journal: record not replayed", "err", err)
				}
			}
		}
		if err := s.depth.flush(tx); err != nil {
			return err
		}
		s.depth.stamp(tx, last)
		return tx.Bucket(bucketMeta).Put(keyApplied, u64(last))
	})
	if err != nil {
		s.log.Error("journal: applying to bbolt failed; the journal keeps the records", "err", err)
		return err
	}
	s.appliedSeq.Store(last)
	// The checkpoint (a file written, synced and renamed) is written without
	// the journal's lock, which the appender takes for every append; only
	// the applier frees segments, so what it found due stays due.
	s.jmu.Lock()
	due := s.j.releasable(last)
	s.jmu.Unlock()
	var rerr error
	if due {
		if rerr = s.checkpoint(last); rerr == nil {
			s.jmu.Lock()
			rerr = s.j.release(last, nil)
			s.jmu.Unlock()
		}
	}
	if rerr != nil {
		s.log.Warn("journal: segment not recycled", "err", rerr)
	}
	return nil
}

// applyRaw runs an operation without records in its own transaction and
// answers it.
func (s *Store) applyRaw(u *unit) error {
	o := u.raw
	s.commits.Add(1)
	err := s.db.Update(o.apply)
	// A failed operation is answered with its error, not retried.
	for _, un := range s.finish(o, err) {
		s.log.Error("journal: an undo left without a journal record", "op", un.what)
	}
	if u.done != nil {
		close(u.done)
	}
	return nil
}

// failRaw answers the operations without records still queued with err; the
// records stay queued, in order.
func (s *Store) failRaw(err error) {
	s.aq.mu.Lock()
	var failed []*unit
	kept := s.aq.units[:0]
	for _, u := range s.aq.units {
		if u.raw != nil {
			failed = append(failed, u)
		} else {
			kept = append(kept, u)
		}
	}
	clear(s.aq.units[len(kept):])
	s.aq.units = kept
	s.aq.mu.Unlock()
	for _, u := range failed {
		for _, un := range s.finish(u.raw, err) {
			s.log.Error("journal: an undo left without a journal record", "op", un.what)
		}
		if u.done != nil {
			close(u.done)
		}
	}
}

// checkpoint records, before a segment is recycled, that bbolt durably holds
// the journal up to applied (docs/decisions.md §34): a bbolt file found older
// than it at Open lacks records the journal no longer has.
func (s *Store) checkpoint(applied uint64) error {
	return writeCheckpoint(s.j.dir, applied)
}

// Sync waits until bbolt holds every record appended before the call, asking
// the applier not to wait for ApplyDelay: readers of bbolt alone (QueuedAORs,
// Stats, the outbox) then see every write answered before it. Without a
// journal it returns at once.
func (s *Store) Sync(ctx context.Context) error {
	if s.aq == nil {
		return nil
	}
	target := s.appendedSeq.Load()
	for s.appliedSeq.Load() < target {
		s.aq.mu.Lock()
		s.aq.urgent = true
		progress := s.aq.progress
		s.aq.mu.Unlock()
		s.aq.kick()
		select {
		case <-progress:
		case <-s.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// runWaker calls OnApply off the applier's goroutine: a reader it wakes may be
// waiting for a write of its own (presence writes while holding its lock).
func (s *Store) runWaker() {
	defer close(s.wakerDone)
	for aors := range s.wakes {
		s.onApply(aors)
	}
}
