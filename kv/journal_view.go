package kv

import (
	"encoding/binary"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// What the appender decides against (docs/decisions.md §34): bbolt as last
// committed, plus the records appended but not yet applied (the overlay), plus
// the records of the group being decided (the view's own layers). Every
// decision a transaction would make (a quota slot, a message's state, an id
// already taken) comes out the same.

// overlay holds, for the records appended but not yet applied to bbolt, each
// changed message's newest record and each recipient's queue-depth changes.
// Only the appender writes it; readers (Get, QueueScan) read it under mu so that
// they see their own answered writes before bbolt has them.
type overlay struct {
	mu     sync.RWMutex
	msgs   map[string]ovMsg
	depth  map[string][]ovDelta
	groups []ovGroup // appended groups not yet forgotten, oldest first
	// fresh holds, by recipient, the messages that entered the queue in
	// records not applied yet (new, or back in it): bbolt's queue lacks them,
	// and QueueScan merges them in by queue key.
	fresh map[string]map[string]ovFresh
}

type ovFresh struct {
	seq uint64
	qk  []byte
}

// freshEntry is a message entering aor's queue under queue key qk.
type freshEntry struct {
	aor, id string
	qk      []byte
}

type ovMsg struct {
	seq uint64 // the last record of the group that wrote it
	rec []byte // the message's encoded record
}

type ovDelta struct {
	seq uint64
	d   int
}

type ovGroup struct {
	last  uint64
	ids   []string
	aors  []string
	fresh []freshEntry
}

func newOverlay() *overlay {
	return &overlay{msgs: map[string]ovMsg{}, depth: map[string][]ovDelta{}, fresh: map[string]map[string]ovFresh{}}
}

// add records a group whose records end at seq last.
func (ov *overlay) add(last uint64, msgs map[string][]byte, depth map[string]int, fresh []freshEntry) {
	if len(msgs) == 0 && len(depth) == 0 {
		return
	}
	g := ovGroup{last: last, fresh: fresh}
	ov.mu.Lock()
	defer ov.mu.Unlock()
	for id, rec := range msgs {
		ov.msgs[id] = ovMsg{seq: last, rec: rec}
		g.ids = append(g.ids, id)
	}
	for aor, d := range depth {
		if d != 0 {
			ov.depth[aor] = append(ov.depth[aor], ovDelta{seq: last, d: d})
			g.aors = append(g.aors, aor)
		}
	}
	for _, f := range fresh {
		q := ov.fresh[f.aor]
		if q == nil {
			q = map[string]ovFresh{}
			ov.fresh[f.aor] = q
		}
		q[f.id] = ovFresh{seq: last, qk: f.qk}
	}
	ov.groups = append(ov.groups, g)
}

// prune forgets the groups bbolt holds (seq <= applied). Called by the
// appender only, which is the overlay's only writer.
func (ov *overlay) prune(applied uint64) {
	if len(ov.groups) == 0 || ov.groups[0].last > applied {
		return
	}
	ov.mu.Lock()
	defer ov.mu.Unlock()
	for len(ov.groups) > 0 && ov.groups[0].last <= applied {
		g := ov.groups[0]
		for _, id := range g.ids {
			if e, ok := ov.msgs[id]; ok && e.seq <= applied {
				delete(ov.msgs, id)
			}
		}
		for _, aor := range g.aors {
			ds := ov.depth[aor]
			i := 0
			for i < len(ds) && ds[i].seq <= applied {
				i++
			}
			if i == len(ds) {
				delete(ov.depth, aor)
			} else {
				ov.depth[aor] = ds[i:]
			}
		}
		for _, f := range g.fresh {
			if q := ov.fresh[f.aor]; q != nil {
				if e, ok := q[f.id]; ok && e.seq <= applied {
					delete(q, f.id)
					if len(q) == 0 {
						delete(ov.fresh, f.aor)
					}
				}
			}
		}
		ov.groups[0] = ovGroup{}
		ov.groups = ov.groups[1:]
	}
	if len(ov.groups) == 0 {
		ov.groups = nil // let the array go
	}
}

// pendingDepth sums aor's depth changes not in bbolt at applied.
func (ov *overlay) pendingDepth(aor string, applied uint64) int {
	n := 0
	for _, d := range ov.depth[aor] {
		if d.seq > applied {
			n += d.d
		}
	}
	return n
}

// view is the appender's changer for one group of ops (see changer). One view
// serves every group of the appender: its maps and the op's layer are emptied,
// not made again, for each (what a view hands on, recs and fresh, is not reused).
type view struct {
	s   *Store
	rtx *bolt.Tx // bbolt as committed, opened at the first read

	// The group's layer: decided, not appended yet.
	msgs   map[string][]byte
	deltas map[string]int
	grown  map[string]struct{} // recipients whose queues grew: woken once applied
	fresh  []freshEntry
	recs   [][]byte

	// The current op's layer: kept (merged into the group's) or dropped when
	// the op fails. Few entries each (an op changes one message, or a few
	// copies of one): slices searched from the newest.
	opMsgs  []opMsg
	opDepth []opDelta
	opGrown []string
	opFresh []freshEntry
	opRecs  [][]byte
}

type opMsg struct {
	id  string
	rec []byte
}

type opDelta struct {
	aor string
	d   int
}

func newView(s *Store) *view {
	return &view{s: s, msgs: map[string][]byte{}, deltas: map[string]int{}, grown: map[string]struct{}{}}
}

func (v *view) message(id string) ([]byte, error) {
	for i := len(v.opMsgs) - 1; i >= 0; i-- {
		if v.opMsgs[i].id == id {
			return v.opMsgs[i].rec, nil
		}
	}
	if rec, ok := v.msgs[id]; ok {
		return rec, nil
	}
	if e, ok := v.s.ov.msgs[id]; ok {
		return e.rec, nil
	}
	if v.rtx == nil {
		tx, err := v.s.db.Begin(false)
		if err != nil {
			return nil, err
		}
		v.rtx = tx
	}
	rec := v.rtx.Bucket(bucketMessages).Get([]byte(id))
	if rec == nil {
		return nil, nil
	}
	return append([]byte(nil), rec...), nil // valid only while rtx is
}

// taken reports whether a message id is in use, as message would find it,
// without copying its record.
func (v *view) taken(id string) (bool, error) {
	for i := len(v.opMsgs) - 1; i >= 0; i-- {
		if v.opMsgs[i].id == id {
			return true, nil
		}
	}
	if _, ok := v.msgs[id]; ok {
		return true, nil
	}
	if _, ok := v.s.ov.msgs[id]; ok {
		return true, nil
	}
	if v.rtx == nil {
		tx, err := v.s.db.Begin(false)
		if err != nil {
			return false, err
		}
		v.rtx = tx
	}
	return v.rtx.Bucket(bucketMessages).Get([]byte(id)) != nil, nil
}

// depth returns aor's queued count as the op being decided sees it.
func (v *view) depth(aor string) int {
	n, applied := v.s.depth.committedAt(aor)
	n += v.s.ov.pendingDepth(aor, applied) + v.deltas[aor]
	for _, d := range v.opDepth {
		if d.aor == aor {
			n += d.d
		}
	}
	return n
}

func (v *view) put(id string, rec []byte) {
	v.opMsgs = append(v.opMsgs, opMsg{id, rec})
}

func (v *view) moved(aor string, d int) {
	v.opDepth = append(v.opDepth, opDelta{aor, d})
}

// entered records m entering its recipient's queue under queue key qk (nil:
// made here).
func (v *view) entered(m *Message, qk []byte) {
	v.moved(m.To, 1)
	v.opGrown = append(v.opGrown, m.To)
	if qk == nil {
		var err error
		if qk, err = queueKey(m.To, m.Order, m.ID); err != nil {
			return
		}
	}
	v.opFresh = append(v.opFresh, freshEntry{aor: m.To, id: m.ID, qk: qk})
}

// enqueued records a new message: p is its journal record (recEnqueue and the
// message's record), qk its queue key.
func (v *view) enqueued(m *Message, p, qk []byte) {
	v.put(m.ID, p[1:])
	v.entered(m, qk)
	v.opRecs = append(v.opRecs, p)
}

// changed implements changer: the change becomes a recChange record, which
// holds the message's new record whole, so that replaying it needs nothing
// but the message's previous state.
func (v *view) changed(m *Message, was State, rec, obx []byte) error {
	p := make([]byte, 5, 5+len(rec)+len(obx))
	p[0] = recChange
	binary.BigEndian.PutUint32(p[1:], uint32(len(rec)))
	p = append(append(p, rec...), obx...)
	v.put(m.ID, p[5:5+len(rec)])
	if (was == StateQueued) != (m.State == StateQueued) {
		if m.State == StateQueued {
			v.entered(m, nil)
		} else {
			v.moved(m.To, -1)
		}
	}
	v.opRecs = append(v.opRecs, p)
	return nil
}

// keep merges the op's layer into the group's.
func (v *view) keep() {
	for _, e := range v.opMsgs {
		v.msgs[e.id] = e.rec
	}
	for _, d := range v.opDepth {
		v.deltas[d.aor] += d.d
	}
	for _, aor := range v.opGrown {
		v.grown[aor] = struct{}{}
	}
	v.fresh = append(v.fresh, v.opFresh...)
	v.recs = append(v.recs, v.opRecs...)
	v.drop()
}

// drop forgets the op's layer.
func (v *view) drop() {
	clear(v.opMsgs)
	clear(v.opFresh)
	clear(v.opRecs)
	v.opMsgs, v.opDepth, v.opGrown, v.opFresh, v.opRecs = v.opMsgs[:0], v.opDepth[:0], v.opGrown[:0], v.opFresh[:0], v.opRecs[:0]
}

// release ends the read transaction: before the appender waits for anything
// or takes the overlay's lock (a bbolt commit that grows the file waits for
// every read transaction).
func (v *view) release() {
	if v.rtx != nil {
		v.rtx.Rollback()
		v.rtx = nil
	}
}

// reset empties the group's layer once it is appended (or failed): the
// overlay and the applier keep recs and fresh, and copied what they needed of
// the maps.
func (v *view) reset() {
	clear(v.msgs)
	clear(v.deltas)
	clear(v.grown)
	v.fresh, v.recs = nil, nil
}

// depthNow returns aor's queued count with the records not yet applied, for a
// check outside the appender (Enqueue's early refusal); without a journal, as
// of the last commit.
func (s *Store) depthNow(aor string) int {
	if s.ov == nil {
		return s.depth.committed(aor)
	}
	s.ov.mu.RLock()
	defer s.ov.mu.RUnlock()
	n, applied := s.depth.committedAt(aor)
	return n + s.ov.pendingDepth(aor, applied)
}
