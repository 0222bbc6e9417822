package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// chatSent is the BACKGROUND_JOB body of a chat the device answered 2xx.
const chatSent = "Sent"

// worker delivers one recipient's queue. Only its goroutine touches its fields.
type worker struct {
	r   *Relay
	aor string
	// device is the device whose copies this lane sends (docs/decisions.md §29);
	// empty for the recipient's own lane, which sends the messages without copies.
	device  string
	key     string        // laneKey(aor, device)
	wake    chan struct{} // cap 1: a pending wake-up
	results chan *result  // sends' slot notices and results; only run and drain read it

	inflight map[string]bool // message ids being sent
	// answered holds the messages in flight whose device answered 2xx while
	// their Delivered record is still being written: they stay in inflight (so
	// readAhead passes over them, and a failed record retries them as before)
	// but no longer count against the window, so their records share
	// fdatasyncs with the attempts begun meanwhile instead of the window
	// waiting for each in turn (docs/decisions.md §20).
	answered map[string]bool
	// chain is closed when the last send started has been accepted by
	// FreeSWITCH: each send waits for the one before, so the chats of a window
	// start in queue order (FreeSWITCH starts its jobs in the order it accepted
	// them, and its job threads reach sofia in that order but for a rare swap of
	// neighbours, BENCHMARKS.md), while their ≥100 ms waits for the device overlap.
	chain chan struct{}
	// blocked is set by a failed send: nothing new goes out until the sends in
	// flight have ended, then the queue restarts at its head, so the failed
	// message is retried before anything newer (docs/decisions.md §7).
	blocked bool
	// ahead holds the next queued messages not yet sent, in order (readAhead);
	// stale says it must be read again before use.
	ahead []*kv.Message
	stale bool
	// proven: the device lane's last result was its device's 2xx (window).
	proven bool
	// withCopies are the ids of messages with copies the recipient's lane
	// passed over (relay/devices.go, skip), and devKeys the devices of their
	// copies: the lanes it wakes whenever one of its own messages ends.
	withCopies map[string]bool
	devKeys    map[string]bool
	wire       *wire
}

type result struct {
	m       *kv.Message
	attempt string
	started time.Time
	took    time.Duration
	reply   string
	err     error
	begun   bool // the attempt was recorded; false: nothing was sent
	direct  bool // sent by sipsilo itself; status is the device's answer
	status  int
	// recorded: the device's 2xx was written (Delivered) by the send's own
	// goroutine, so that the commits of a window share fsyncs instead of queueing
	// one by one behind the worker; recordErr is that write's error.
	recorded  bool
	recordErr error
	// notSent: begun, but it did not go out (wire.take failed); the attempt
	// is ended as not sent.
	notSent bool
	// slot: not a result but the notice that the device answered 2xx and the
	// send's goroutine is now writing Delivered; the final result follows.
	slot bool
}

// confirmed reports whether the device answered 2xx, and the result text.
func (res *result) confirmed() (string, bool) {
	if res.err != nil {
		return "", false
	}
	if res.direct {
		return "SIP " + strconv.Itoa(res.status), res.status >= 200 && res.status < 300
	}
	reply := strings.TrimSpace(res.reply)
	return reply, reply == chatSent
}

func newWorker(r *Relay, aor, device string) *worker {
	return &worker{
		r:      r,
		aor:    aor,
		device: device,
		key:    laneKey(aor, device),
		wake:   make(chan struct{}, 1),
		// A send posts a slot notice (2xx only) and a result. Its room covers
		// the sends of a window and those begun ahead; past it a send waits
		// for the worker, which reads it whenever it is not dispatching.
		// Pointers: a restart at 10,000 queued recipients makes a lane for each
		// at once, and 40 results by value were ≈ 10 KB per lane (100 MB).
		results:    make(chan *result, 2*max(r.cfg.Window, r.cfg.DirectWindow+aheadDepth(r.cfg.DirectWindow))),
		inflight:   make(map[string]bool),
		answered:   make(map[string]bool),
		wire:       newWire(),
		chain:      closedChan(),
		withCopies: make(map[string]bool),
		devKeys:    make(map[string]bool),
	}
}

func (w *worker) run(ctx context.Context) {
	// Sends outlive ctx by up to DrainTimeout so that a shutdown records the
	// results it can still get instead of leaving every message in flight.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, idle := w.dispatch(ctx, sendCtx)
		if idle && len(w.inflight) == 0 && w.r.retire(w) {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		var tc <-chan time.Time
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
			tc = timer.C
		}
		select {
		case res := <-w.results:
			w.handle(sendCtx, *res)
		case <-w.wake:
			w.stale = true // a new message or body, or a sign of life
		case <-tc:
		case <-ctx.Done():
			w.drain(sendCtx, cancelSends)
			w.r.retire(w)
			return
		}
	}
}

// drain waits for the sends in flight, cancelling them after DrainTimeout. The
// attempts begun ahead and not yet out are not sent: they end as not sent.
func (w *worker) drain(ctx context.Context, cancelSends context.CancelFunc) {
	w.wire.halt()
	t := time.NewTimer(w.r.cfg.DrainTimeout)
	defer t.Stop()
	for len(w.inflight) > 0 {
		select {
		case res := <-w.results:
			w.handle(ctx, *res)
		case <-t.C:
			cancelSends() // BgAPI returns at once; the messages stay in flight on disk
		}
	}
}

// dispatch starts as many sends as the window allows. It returns when to look
// again (zero: only on a wake-up or a result), and idle when there is nothing this
// worker can do until woken.
func (w *worker) dispatch(ctx, sendCtx context.Context) (next time.Time, idle bool) {
	r := w.r
	if ctx.Err() != nil {
		return time.Time{}, false
	}
	if w.blocked {
		if len(w.inflight) > 0 {
			return time.Time{}, false
		}
		w.blocked, w.stale = false, true // restart at the head
		w.wire.halted.Store(false)
	}
	now := r.cfg.Now()
	if until, ok := r.holds.queueHold(w.key, now); ok {
		return until, false
	}
	if !w.deliverable() {
		w.noteHolding()
		return time.Time{}, true // presence wakes us on a sign of life
	}
	onWire, ahead := w.window()
	free := onWire + ahead - (len(w.inflight) - len(w.answered))
	if free <= 0 {
		return time.Time{}, false
	}
	if w.stale || len(w.ahead) == 0 {
		if err := w.readAhead(); err != nil {
			r.c.storeErrors.Add(1)
			r.log.Error("cannot read queue", "err", err)
			return now.Add(r.cfg.RetryMin), false
		}
		if len(w.ahead) == 0 && len(w.inflight) == 0 {
			return time.Time{}, true
		}
	}
	if r.cfg.DirectOnly && !w.directReady() {
		// Nothing but the direct path can confirm a delivery: wait for it in
		// memory rather than record an attempt that cannot be made.
		w.noteHolding()
		return now.Add(r.cfg.RetryMin), false
	}
	// Probe before a batch, not before each send of a window: the sends in flight
	// are evidence enough while they last.
	if len(w.inflight) == 0 && r.cfg.Prober != nil && !w.check(ctx) {
		r.c.probeFailed.Add(1)
		until := r.cfg.Now().Add(r.cfg.RetryMin)
		r.holds.holdQueue(w.key, until)
		return until, false
	}
	for len(w.ahead) > 0 && free > 0 {
		m := w.ahead[0]
		if w.device != "" && len(m.Devices) == 0 {
			// A message without copies, still queued, comes before the copies
			// behind it on every device: the recipient's lane wakes this one
			// once it has left the queue (docs/decisions.md §29).
			return time.Time{}, len(w.inflight) == 0
		}
		// Head-of-line: a message not ready holds back everything behind it.
		if !m.BodyFinal {
			return time.Time{}, len(w.inflight) == 0 // the body tracker wakes us
		}
		if ready := m.Received.Add(r.cfg.Settle); now.Before(ready) {
			return ready, false
		}
		if until, ok := r.holds.messageHold(w.msgKey(m.ID), now); ok {
			return until, false
		}
		w.start(sendCtx, m, now, onWire)
		w.ahead = w.ahead[1:]
		free--
	}
	return time.Time{}, false
}

// window is how many sends may be out awaiting the device's answer now
// (onWire): through FreeSWITCH each is held ≥ 100 ms, so many overlap; the
// direct path needs few. A device lane sends one at a time until its device
// confirmed a copy: a device that went silent unnoticed then has one chat
// retransmitted by FreeSWITCH, not a window of them landing in any order when it
// comes back (docs/decisions.md §29). On the direct path as many more may have
// their attempt begun ahead (ahead), so that the fdatasync of the begun record
// is not between one answer and the next send (docs/decisions.md §20).
func (w *worker) window() (onWire, ahead int) {
	if w.device != "" && !w.proven {
		return 1, 0
	}
	if w.directReady() {
		return w.r.cfg.DirectWindow, aheadDepth(w.r.cfg.DirectWindow)
	}
	return w.r.cfg.Window, 0
}

// readAhead reads the head of the queue, past the sends in flight: up to two
// windows, so that a backlog drains without decoding the same messages again
// for every result. Only this worker takes messages out of its queue; what it
// cannot see is a message added meanwhile, so a wake-up (new message, body
// confirmed) or a failure marks the read stale.
func (w *worker) readAhead() error {
	var seen map[string]bool
	if w.device == "" && w.r.cfg.Devices != nil {
		seen = w.devKeys
	}
	msgs, err := w.r.store.QueueScan(w.aor, 2*w.r.cfg.Window, w.skip(), w.pick(seen))
	if err != nil {
		return err
	}
	w.ahead = append(w.ahead[:0], msgs...)
	w.stale = false
	if len(seen) > 0 {
		w.r.wakeDevices(w.aor, seen)
	}
	if w.device != "" {
		w.setHolding(len(w.inflight) > 0 || len(w.ahead) > 0)
	}
	return nil
}

// start sends m in its own goroutine: record the attempt durably, wait for the
// previous send to leave and for a place on the wire (onWire sends awaiting
// their answer at most), then send directly or by bgapi chat.
func (w *worker) start(ctx context.Context, m *kv.Message, now time.Time, onWire int) {
	r := w.r
	w.inflight[m.ID] = true
	attempt, uncertain := w.attemptID(m)
	prev, mine := w.chain, make(chan struct{})
	w.chain = mine
	r.wg.Go(func() {
		release := func() {} // gives back the place under MaxInFlight, once taken
		defer func() { release() }()
		accepted := sync.OnceFunc(func() { close(mine) })
		defer accepted()
		res := result{m: m, attempt: attempt, started: now}
		if err := w.beginAttempt(ctx, m, attempt, now); err != nil {
			res.err = err
			w.results <- &res
			return
		}
		res.begun = true
		if uncertain {
			r.c.uncertain.Add(1)
		}
		ct := m.ContentType
		if ct == "" {
			ct = "text/plain"
		}
		sctx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
		defer cancel()
		if err := w.wire.take(sctx, prev, onWire, r.sem); err != nil {
			// Begun ahead, but an earlier send of the window failed (or the
			// wait ran out): it does not go out after that one.
			w.wire.halt()
			res.err, res.notSent = err, true
			w.results <- &res
			return
		}
		release = sync.OnceFunc(func() { <-r.sem })
		off := sync.OnceFunc(func() {
			if _, ok := res.confirmed(); !ok {
				w.wire.halt() // before the place is given back: see wire.take
			}
			w.wire.give()
		})
		defer off()
		if r.cfg.Direct != nil {
			wait, ok, err := w.sendDirect(sctx, m)
			if ok {
				accepted()
				res.direct = true
				if err == nil {
					r.c.sent.Add(1)
					r.c.direct.Add(1)
					res.status, err = wait(sctx)
				}
				res.err, res.took = err, r.cfg.Now().Sub(now)
				off()
				w.record(ctx, &res, release)
				w.results <- &res
				return
			}
		}
		to, err := w.chatTo(m)
		var job Job
		if err == nil {
			job, err = r.send.StartJob(sctx, "chat", ChatArgs(m.From, to, m.Body, ct), attempt)
		}
		accepted()
		if err == nil {
			r.c.sent.Add(1)
			res.reply, res.err = job.Wait(sctx)
		} else {
			res.err = err
		}
		res.took = r.cfg.Now().Sub(now)
		off()
		w.record(ctx, &res, release)
		w.results <- &res
	})
}

// wire counts a lane's sends that left and await their answer. Sends take
// their place in queue order (each only once the send before it left, so one
// waits at a time) and give it back at the answer; once a send of the window
// ends without a 2xx the lane halts: the sends begun ahead and not yet out are
// not sent, until the worker restarts at the head of the queue.
type wire struct {
	out    atomic.Int32
	halted atomic.Bool
	freed  chan struct{} // cap 1: a place was given back
}

var errHalted = errors.New("relay: not sent: an earlier send of the window failed")

func newWire() *wire { return &wire{freed: make(chan struct{}, 1)} }

// take waits for prev (the send before this one left), then for fewer than
// limit sends out, and takes a place; then for a place under the global cap
// (sem, Config.MaxInFlight). It fails once the lane halted, holding nothing.
func (l *wire) take(ctx context.Context, prev <-chan struct{}, limit int, sem chan struct{}) error {
	select {
	case <-prev:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		// The load of out comes first: a place given back by a failed send is
		// seen only with its halt (halt happens before give).
		if l.out.Load() < int32(limit) {
			if l.halted.Load() {
				return errHalted
			}
			break
		}
		select {
		case <-l.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if l.halted.Load() { // halted while this one waited for the global cap
		<-sem
		return errHalted
	}
	l.out.Add(1)
	return nil
}

func (l *wire) give() {
	l.out.Add(-1)
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

func (l *wire) halt() { l.halted.Store(true) }

// record writes a confirmed delivery from the send's goroutine. It takes the
// message out of the queue in one commit after the device's 2xx: the one window
// in which a crash resends (docs/decisions.md §1). The send is over at the
// answer, so its window slot and its place under MaxInFlight are given back
// before the write (release, and a slot notice to the worker); the message stays
// in flight until the write's result is handled. The write outlives a
// shutdown's cancellation, bounded on its own.
func (w *worker) record(ctx context.Context, res *result, release func()) {
	text, ok := res.confirmed()
	if !ok {
		return
	}
	release()
	w.results <- &result{m: res.m, attempt: res.attempt, slot: true}
	w.r.c.delivered.Add(1) // before the write: whoever sees the queue empty sees the count
	if w.device != "" {
		w.r.c.deviceDeliveries.Add(1)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	res.recorded, res.recordErr = true, w.storeDelivered(rctx, res.m.ID, res.attempt, text)
	if obs := w.r.cfg.Observer; obs != nil && res.recordErr == nil {
		path := PathESL
		if res.direct {
			path = PathDirect
		}
		obs.Delivered(path, w.r.cfg.Now().Sub(res.m.Received))
	}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// handle records one send's result and decides what comes next.
func (w *worker) handle(ctx context.Context, res result) {
	r := w.r
	if res.slot {
		if w.inflight[res.m.ID] {
			w.answered[res.m.ID] = true
		}
		return
	}
	delete(w.inflight, res.m.ID)
	delete(w.answered, res.m.ID)
	if w.device == "" {
		// The device lanes of the recipient may wait at this message.
		defer r.wakeDevices(w.aor, w.devKeys)
	} else {
		w.proven = res.recorded && res.recordErr == nil
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if res.recorded { // the common case first, without a logger of its own
		w.delivered(sctx, res)
		return
	}
	id, log := res.m.ID, r.log.With("id", res.m.ID, "attempt", res.attempt)
	reply := strings.TrimSpace(res.reply)
	if res.begun && !res.recorded && res.m.Attempts == 0 {
		// Its first attempt did not confirm: the sender may hear it was stored.
		r.notify(res.m, kv.NoticeStored)
	}
	switch {
	case !res.begun:
		w.blocked = true
		if errors.Is(res.err, kv.ErrExpired) {
			r.expired(res.m) // expired instead of sent, in the same commit
			return
		}
		if errors.Is(res.err, kv.ErrNotQueued) || errors.Is(res.err, kv.ErrNotFound) || errors.Is(res.err, kv.ErrNoCopy) {
			return // purged or delivered meanwhile: nothing to send
		}
		r.c.storeErrors.Add(1)
		log.Error("cannot record delivery attempt; not sent", "err", res.err)
		r.holds.holdQueue(w.key, r.cfg.Now().Add(r.cfg.RetryMin))

	case res.notSent:
		w.blocked = true
		w.endAttempt(sctx, res, kv.AttemptResult{Text: res.err.Error()})
		log.Debug("begun ahead, not sent", "err", res.err)

	case res.direct:
		w.handleDirect(sctx, res)

	case res.err != nil && errors.Is(res.err, ErrOutcomeUnknown):
		// The chat may be running in FreeSWITCH still: the message stays marked
		// in flight, and is sent again only after Timer F.
		r.c.unknown.Add(1)
		w.blocked = true
		r.holds.holdMessage(w.msgKey(id), w.aor, res.started.Add(r.cfg.TimerF))
		log.Warn("delivery result lost; holding the message for Timer F", "err", res.err)

	case res.err != nil:
		// Not sent (no ESL connection, bad input): try again shortly.
		w.blocked = true
		r.holds.holdQueue(w.key, r.cfg.Now().Add(r.cfg.RetryMin))
		w.endAttempt(sctx, res, kv.AttemptResult{Text: res.err.Error()})
		log.Warn("not sent", "err", res.err)

	default:
		w.blocked = true
		w.failed(sctx, res, reply)
	}
}

// delivered finishes a confirmed delivery whose write the send's goroutine did.
func (w *worker) delivered(ctx context.Context, res result) {
	r := w.r
	if res.recordErr != nil {
		r.c.storeErrors.Add(1)
		r.log.Error("delivered but not recorded; it will be sent again", "id", res.m.ID, "attempt", res.attempt, "err", res.recordErr)
		w.blocked = true
		r.holds.holdQueue(w.key, r.cfg.Now().Add(r.cfg.RetryMin))
	}
	r.log.Debug("delivered", "id", res.m.ID, "attempt", res.attempt, "direct", res.direct, "took", res.took)
	w.observe(ctx, presence.Delivered2xx, res.started)
}

// handleDirect records the device's own answer to sipsilo's MESSAGE: 2xx
// delivered, any other final status refused by a live device, no answer
// uncertain (the device may have it; sipsilo's transaction has ended, so nothing
// is retransmitted after it and no Timer F hold is needed).
func (w *worker) handleDirect(ctx context.Context, res result) {
	r := w.r
	log := r.log.With("id", res.m.ID, "attempt", res.attempt, "path", "direct")
	text := "SIP " + strconv.Itoa(res.status)
	switch {
	case res.err == nil:
		w.blocked = true
		w.refused(ctx, res, text, log)
	default:
		w.blocked = true
		r.c.noAnswer.Add(1)
		w.endAttempt(ctx, res, kv.AttemptResult{Text: res.err.Error(), MayArrive: true})
		r.holds.holdQueue(w.key, r.cfg.Now().Add(r.cfg.RetryMin))
		w.observe(ctx, presence.NoAnswer, res.started)
		log.Info("device did not answer sipsilo's MESSAGE; kept", "err", res.err)
	}
}

// failed classifies a chat error (docs/decisions.md §7): FreeSWITCH only says
// "Error! Message Not Sent", so use how long it took and whether FreeSWITCH has a
// registration for the recipient.
func (w *worker) failed(ctx context.Context, res result, reply string) {
	r := w.r
	id, log := res.m.ID, r.log.With("id", res.m.ID, "attempt", res.attempt)
	switch {
	case res.took >= r.cfg.NoAnswerAfter:
		r.c.noAnswer.Add(1)
		r.holds.holdMessage(w.msgKey(id), w.aor, res.started.Add(r.cfg.TimerF))
		// A phone that wakes up before Timer F still gets the retransmission.
		w.endAttempt(ctx, res, kv.AttemptResult{Text: reply, MayArrive: true})
		w.observe(ctx, presence.NoAnswer, res.started)
		log.Info("recipient did not answer; kept until it shows life", "took", res.took)
	case !w.registered(ctx):
		r.c.notRegistered.Add(1)
		w.endAttempt(ctx, res, kv.AttemptResult{Text: reply})
		w.observe(ctx, presence.NotRegistered, res.started)
		log.Info("recipient not registered; kept until it registers")
	default:
		w.refused(ctx, res, reply, log)
	}
}

// refused counts a refusal by a live device: back off, and dead-letter the
// message after DeadAfter refusals.
func (w *worker) refused(ctx context.Context, res result, text string, log *slog.Logger) {
	r := w.r
	r.c.refused.Add(1)
	m := w.endAttempt(ctx, res, kv.AttemptResult{Text: text, Refused: true})
	w.observe(ctx, presence.Refused, res.started)
	refusals := w.refusals(res.m) + 1
	if m != nil {
		refusals = w.refusals(m)
	}
	if refusals >= r.cfg.DeadAfter {
		r.c.dead.Add(1)
		reason := fmt.Sprintf("refused %d times by a registered device (last: %s)", refusals, text)
		if err := w.deadLetter(ctx, res.m.ID, reason); err != nil {
			r.c.storeErrors.Add(1)
			log.Error("cannot dead-letter", "err", err)
		}
		log.Warn("dead-lettered", "refusals", refusals)
		return
	}
	until := r.cfg.Now().Add(backoff(r.cfg.RetryMin, r.cfg.RetryMax, refusals))
	r.holds.holdQueue(w.key, until)
	log.Info("recipient refused; retrying later", "refusals", refusals, "until", until)
}

// registered asks FreeSWITCH whether it has a contact for the recipient. Unsure
// (ESL down) counts as registered: the refusal count errs towards retrying.
func (w *worker) registeredAOR(ctx context.Context) bool {
	out, err := w.r.send.API(ctx, "sofia_contact "+w.aor)
	if err != nil {
		return true
	}
	return !strings.Contains(out, "user_not_registered")
}

func (w *worker) endAttempt(ctx context.Context, res result, ar kv.AttemptResult) *kv.Message {
	var m *kv.Message
	var err error
	if w.device == "" {
		m, err = w.r.store.EndAttempt(ctx, res.m.ID, res.attempt, ar)
	} else {
		m, err = w.r.store.EndCopyAttempt(ctx, res.m.ID, w.device, res.attempt, ar)
	}
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		w.r.c.storeErrors.Add(1)
		w.r.log.Error("cannot record failed attempt", "id", res.m.ID, "err", err)
	}
	return m
}

// backoff is lo·2^(n-1), capped at hi.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// observe feeds a send's outcome to presence; a failure to record it costs
// evidence, not messages, so it is logged and delivery goes on.
func (r *Relay) observe(ctx context.Context, aor string, o presence.Outcome, sentAt time.Time) {
	if err := r.pres.ObserveSent(ctx, aor, o, sentAt); err != nil {
		r.log.Error("delivery outcome not recorded in presence", "outcome", o.String(), "err", err)
	}
}

// aheadDepth is how many direct sends may have their attempt begun beyond the
// window: enough that the begun records of the next sends are durable by the
// time the window has room (docs/decisions.md §20).
func aheadDepth(window int) int { return min(8*window, 64) }
