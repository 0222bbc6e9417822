package kv

import (
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// errStopped ends a walker once another one has found the file damaged; the
// check reports that one's error.
var errStopped = errors.New("check stopped")

// parallel runs parts of the check's walk on up to n extra goroutines. A part
// is handed over only when a goroutine is free, so the goroutines never exceed
// n and the walk never waits for one: it walks the part itself. wait returns
// the first error of any part.
type parallel struct {
	slots chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
	stop  atomic.Bool
}

func newParallel(n int) *parallel {
	return &parallel{slots: make(chan struct{}, max(n, 0))}
}

func (p *parallel) failed() bool { return p.stop.Load() }

// run walks part on a free goroutine, or here when none is free. Its error,
// from here or from the goroutine, is recorded for wait; here it is also returned.
func (p *parallel) run(part func() error) error {
	select {
	case p.slots <- struct{}{}:
	default:
		return p.fail(part())
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.slots }()
		p.fail(guard(part))
	}()
	return nil
}

func (p *parallel) fail(err error) error {
	if err == nil || errors.Is(err, errStopped) {
		return err
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.stop.Store(true)
	return err
}

// wait waits for every part handed over and returns the first error found
// (err, the walk's own, if the parts found none).
func (p *parallel) wait(err error) error {
	p.wg.Wait()
	p.fail(err)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// guard runs part on a goroutine of its own: a fault reading the mapped file (it
// shrank under the map) or any other panic becomes an error there, as
// checkOpenFile does on the goroutine that started the check.
func guard(part func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corrupt("reading the file failed: %v", r)
		}
	}()
	return part()
}
