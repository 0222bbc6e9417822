package presence

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// refreshEvery is how often Run asks for the target list: often enough that a new
// registration is pinged within its first Interval, rarely enough that listing
// tens of thousands of contacts costs nothing.
const refreshEvery = time.Second

// coalesce lets Run start a ping this much before it is due, so that pings due
// close together share one wake-up of the scheduler instead of one each; the
// limiter still spaces them. Against a 5 s ± 10 % interval it is noise.
const coalesce = 25 * time.Millisecond

// probeKeep is how long the miss count of a target known only from Probe calls is
// kept: long enough for a retry loop's next probe-before-deliver to see the streak.
const probeKeep = time.Minute

// targetState is one target's place in the schedule. All fields are guarded by
// schedule.mu.
type targetState struct {
	t      Target
	key    string
	misses int
	due    time.Time
	idx    int    // index in the heap, -1 when not in it
	gen    uint64 // the refresh that last listed it

	scheduled bool      // listed by targets(); otherwise known from Probe only
	inFlight  bool      // a scheduled ping is running; its end reschedules
	removed   bool      // dropped from the schedule; a running ping must not requeue it
	touched   time.Time // last Probe, for dropping probe-only states
}

// schedule is a min-heap of due times over every scheduled target that is not
// being pinged, so one goroutine can pace thousands of targets.
type schedule struct {
	mu    sync.Mutex
	byKey map[string]*targetState
	due   dueHeap
	gen   uint64
	wake  chan struct{} // Run's loop: the earliest due time may have moved
	count atomic.Int64  // scheduled targets, for Stats
}

func (s *schedule) init() {
	s.byKey = map[string]*targetState{}
	s.wake = make(chan struct{}, 1)
}

func (s *schedule) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// refresh makes the schedule match ts. New targets are placed at a random point of
// the first interval so that a restart or a resync spreads them instead of
// pinging them all at once.
func (s *schedule) refresh(ts []Target, now time.Time, interval time.Duration, misses int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	for _, t := range ts {
		k := t.Key()
		st := s.byKey[k]
		if st == nil {
			st = &targetState{key: k, idx: -1}
			s.byKey[k] = st
		}
		if st.gen == s.gen {
			continue // listed twice
		}
		st.gen = s.gen
		st.t = t // URI or Profile may have changed under the same key
		if st.scheduled {
			continue
		}
		st.scheduled = true
		st.due = now.Add(rand.N(interval))
		if st.misses > 0 && st.misses < misses {
			st.due = now // a Probe missed it: confirm at once
		}
		if !st.inFlight {
			heap.Push(&s.due, st)
		}
	}
	n := int64(0)
	for k, st := range s.byKey {
		switch {
		case st.gen == s.gen:
			n++
		case st.scheduled:
			if st.idx >= 0 {
				heap.Remove(&s.due, st.idx)
			}
			st.removed = true
			delete(s.byKey, k)
		case now.Sub(st.touched) > probeKeep:
			delete(s.byKey, k)
		}
	}
	s.count.Store(n)
	s.poke()
}

// popDue takes the earliest target if it is due, marking it in flight; otherwise it
// returns when the earliest one will be due (zero when none is scheduled).
func (s *schedule) popDue(now time.Time) (*targetState, Target, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.due) == 0 {
		return nil, Target{}, time.Time{}
	}
	st := s.due[0]
	if st.due.After(now) {
		return nil, Target{}, st.due
	}
	heap.Pop(&s.due)
	st.inFlight = true
	return st, st.t, time.Time{}
}

// unpop gives back a target popDue took but Run could not start.
func (s *schedule) unpop(st *targetState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.inFlight = false
	if !st.removed && st.idx < 0 {
		heap.Push(&s.due, st)
	}
}

// probeState is the state a Probe of t updates: the scheduled one, or one kept for
// Probe calls alone.
func (s *schedule) probeState(t Target) *targetState {
	k := t.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.byKey[k]
	if st == nil {
		st = &targetState{t: t, key: k, idx: -1}
		s.byKey[k] = st
	}
	st.touched = time.Now()
	return st
}

func (s *schedule) missesOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.byKey[key]; st != nil {
		return st.misses
	}
	return 0
}

// record counts res into st (setting res.Misses), returns the streak before it,
// and reschedules st: a scheduled ping's end puts st back in the heap; a Probe's
// result moves st's next ping, since it was a ping too.
func (s *schedule) record(st *targetState, res *PingResult, probe bool, next func(*PingResult) time.Time) (before int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before = st.misses
	if res.Alive {
		st.misses = 0
	} else {
		st.misses++
	}
	res.Misses = st.misses
	if !probe {
		st.inFlight = false
	}
	if !st.scheduled || st.removed || st.inFlight {
		return before
	}
	st.due = next(res)
	if st.idx >= 0 {
		heap.Fix(&s.due, st.idx)
	} else {
		heap.Push(&s.due, st)
	}
	s.poke()
	return before
}

// Run pings the targets on their schedule until ctx ends, then waits for the pings
// it started and returns nil. Call it once.
//
// One goroutine does the scheduling: it sleeps until the earliest due time, takes
// a rate token and a Concurrency slot, and starts that ping on a goroutine of its
// own. Waiting for the token in this one place is what keeps thousands of targets
// from ever bursting together.
func (p *Pinger) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var nextRefresh time.Time
	for {
		now := time.Now()
		if !now.Before(nextRefresh) {
			p.sched.refresh(p.targets(), now, p.cfg.Interval, p.cfg.Misses)
			nextRefresh = now.Add(refreshEvery)
		}
		st, t, due := p.sched.popDue(now.Add(coalesce))
		if st != nil {
			if err := p.start(ctx, &wg, st, t); err != nil {
				p.sched.unpop(st)
				return nil
			}
			continue
		}
		wait := nextRefresh.Sub(now)
		if !due.IsZero() && due.Sub(now) < wait {
			wait = due.Sub(now)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-p.sched.wake:
		}
	}
}

// start waits for a rate token and a Concurrency slot, then pings st's target on a
// new goroutine. It fails only when ctx ends.
func (p *Pinger) start(ctx context.Context, wg *sync.WaitGroup, st *targetState, t Target) error {
	if err := p.lim.Wait(ctx); err != nil {
		return err
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	wg.Go(func() {
		defer func() { <-p.sem }()
		res, cancelled := p.ping(ctx, t)
		if cancelled { // Run is ending: the device did not fail, nothing to report
			p.sched.unpop(st)
			return
		}
		p.finish(st, &res, false)
	})
	return nil
}

// jittered is uniform in [Interval·(1−Jitter), Interval].
func (p *Pinger) jittered() time.Duration {
	f := 1 - p.cfg.Jitter*rand.Float64()
	return time.Duration(float64(p.cfg.Interval) * f)
}

// dueHeap orders targets by due time (container/heap).
type dueHeap []*targetState

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *dueHeap) Push(x any) {
	st := x.(*targetState)
	st.idx = len(*h)
	*h = append(*h, st)
}
func (h *dueHeap) Pop() any {
	old := *h
	st := old[len(old)-1]
	old[len(old)-1] = nil
	st.idx = -1
	*h = old[:len(old)-1]
	return st
}
