package esl

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// nextFailures decides the backoff after a connection that was up since up: a
// connection that lasted is forgotten and the next dial goes at once, one that
// dropped soon after its handshake counts as a failure, so a peer that accepts and
// then hangs up cannot make us spin.
func nextFailures(failures int, up time.Time) int {
	if time.Since(up) >= stableAfter {
		return 0
	}
	return failures + 1
}

// stableAfter is how long a connection must last to reset the backoff.
const stableAfter = 2 * time.Second

// superviseEvents keeps one subscribed event connection up. Connections follow
// one another (the next is dialled only after the previous read loop ended), so
// the order on Events holds across reconnects too.
func (c *Client) superviseEvents(ctx context.Context) {
	var lastCore string
	count, failures := 0, 0
	for ctx.Err() == nil {
		if failures > 0 && !c.sleep(ctx, failures-1) {
			return
		}
		ec, core, err := c.dialEvents(ctx)
		if err != nil {
			failures++
			if ctx.Err() == nil {
				c.st.eventFailures.Add(1)
				c.dialFailed("event", failures, err)
			}
			continue
		}
		c.dialed()
		count++
		c.st.eventConnects.Add(1)
		up := time.Now()
		// Up before Connected goes out, so a BgAPI started on Connected is let
		// through; its result waits in the socket until the read loop starts.
		c.eventUp.Store(true)
		c.publishConnected(Connected{CoreUUID: core, Restarted: lastCore != "" && core != "" && core != lastCore, Count: count})
		if core != "" {
			lastCore = core
		}
		c.log.Info("event connection up", "addr", c.cfg.Addr, "core_uuid", core, "count", count)
		ec.start(c.cfg.HeartbeatTimeout, func(f *frame) { c.handleEvent(f, ec.quit) })
		select {
		case <-ec.done:
			c.log.Warn("event connection lost", "err", ec.err)
		case <-ctx.Done():
		}
		c.eventUp.Store(false)
		ec.close()
		c.eventLost()
		failures = nextFailures(failures, up)
	}
}

// dialEvents connects, reads the Core-UUID and subscribes, all under DialTimeout
// and before the read loop starts, so that Connected can go out before the first
// event. The Core-UUID is asked before subscribing: an api/response on a
// subscribed socket would have to wait behind events.
func (c *Client) dialEvents(ctx context.Context) (*conn, string, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	ec, err := dial(dctx, c.cfg.Addr, c.cfg.Password, c.log)
	if err != nil {
		return nil, "", err
	}
	// dial's deadline still holds; this makes a cancel cut the exchanges short.
	stop := context.AfterFunc(dctx, func() { _ = ec.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// From FreeSWITCH's source (switch_core_init sets the global variable
	// core_uuid to the Core-UUID its events carry); not in the 1.10.12 recordings.
	core, err := ec.exchange("api global_getvar core_uuid")
	if err != nil {
		ec.close()
		return nil, "", fmt.Errorf("esl: reading core_uuid: %w", err)
	}
	if core = strings.TrimSpace(core); strings.HasPrefix(core, "-ERR") || strings.ContainsAny(core, " \n") {
		c.log.Warn("cannot read FreeSWITCH's core_uuid", "reply", core)
		core = ""
	}
	// Filters first: no event FreeSWITCH would filter out gets in between.
	for _, f := range c.cfg.Filters {
		reply, err := ec.exchange("filter " + f)
		if err == nil && !strings.HasPrefix(reply, "+OK") {
			err = fmt.Errorf("%w: %q", ErrCommand, reply)
		}
		if err != nil {
			ec.close()
			return nil, "", fmt.Errorf("esl: filter %s: %w", f, err)
		}
	}
	reply, err := ec.exchange(c.cfg.Subscription)
	if err == nil && !strings.HasPrefix(reply, "+OK") {
		err = fmt.Errorf("%w: %q", ErrCommand, reply)
	}
	if err != nil {
		ec.close()
		return nil, "", fmt.Errorf("esl: subscribing: %w", err)
	}
	return ec, core, nil
}

// handleEvent runs in the event connection's read loop: parse, hand a
// BACKGROUND_JOB to the BgAPI call waiting for it, queue the rest. Blocking here
// is what keeps the order; quit is the connection's, so close never waits on a
// consumer that stopped reading.
func (c *Client) handleEvent(f *frame, quit <-chan struct{}) {
	if f.contentType() != typeEventJSON {
		c.log.Warn("ignoring a non-JSON event frame", "content_type", f.contentType())
		return
	}
	e, err := ParseJSON(f.body)
	if err != nil {
		c.log.Warn("dropping an event that does not parse", "err", err, "bytes", len(f.body))
		return
	}
	if e.Name == "BACKGROUND_JOB" && e.JobUUID != "" {
		c.mu.Lock()
		ch, ok := c.jobs[e.JobUUID]
		delete(c.jobs, e.JobUUID)
		c.mu.Unlock()
		if ok {
			ch <- e // cap 1 and removed from jobs: never blocks
			return
		}
	}
	select {
	case c.events <- e:
	case <-quit:
	}
}

// eventLost fails the BgAPI calls waiting on the connection that just ended:
// their results, if any, went to a socket that is gone.
func (c *Client) eventLost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.lost)
	c.lost = make(chan struct{})
}

// publishConnected replaces a value the consumer has not taken yet, keeping
// Restarted if it was set.
func (c *Client) publishConnected(v Connected) {
	for {
		select {
		case c.connected <- v:
			return
		default:
		}
		select {
		case old := <-c.connected:
			v.Restarted = v.Restarted || old.Restarted
		default:
		}
	}
}

// superviseCommands keeps one command connection up. It carries no events, so
// it gets no idle timeout: a dead one shows up as a command timeout, which
// closes it.
func (c *Client) superviseCommands(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		if failures > 0 && !c.sleep(ctx, failures-1) {
			return
		}
		dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
		cc, err := dial(dctx, c.cfg.Addr, c.cfg.Password, c.log)
		cancel()
		if err != nil {
			failures++
			if ctx.Err() == nil {
				c.st.commandFailures.Add(1)
				c.dialFailed("command", failures, err)
			}
			continue
		}
		c.dialed()
		c.st.commandConnects.Add(1)
		up := time.Now()
		cc.start(0, nil)
		c.setCmd(cc)
		select {
		case <-cc.done:
			c.log.Warn("command connection lost", "err", cc.err)
		case <-ctx.Done():
		}
		c.setCmd(nil)
		cc.close()
		failures = nextFailures(failures, up)
	}
}

func (c *Client) setCmd(cc *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmd = cc
	close(c.cmdWake)
	c.cmdWake = make(chan struct{})
}
