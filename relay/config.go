package relay

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// Store is what relay needs of kv.Store.
type Store interface {
	Queue(aor string, limit int) ([]*kv.Message, error)
	QueueScan(aor string, limit int, skip func(id []byte) bool, pick func(m *kv.Message) (take, stop bool)) ([]*kv.Message, error)
	QueuedAORs() ([]string, error)
	BeginAttempt(ctx context.Context, id, attempt string, at time.Time) (*kv.Message, error)
	EndAttempt(ctx context.Context, id, attempt string, r kv.AttemptResult) (*kv.Message, error)
	Delivered(ctx context.Context, id, attempt, result string) error
	DeadLetter(ctx context.Context, id, reason string) error
	// The same steps for one device's copy (docs/decisions.md §29).
	BeginCopyAttempt(ctx context.Context, id, key, attempt string, at time.Time) (*kv.Message, error)
	EndCopyAttempt(ctx context.Context, id, key, attempt string, r kv.AttemptResult) (*kv.Message, error)
	CopyDelivered(ctx context.Context, id, key, attempt, result string) error
	DeadLetterCopy(ctx context.Context, id, key, reason string) error
	ExpireDue(ctx context.Context, now time.Time, pending time.Duration, each func(*kv.Message)) (int, error)
	MarkNotice(ctx context.Context, id, kind string) (bool, error)
}

var _ Store = (*kv.Store)(nil)

// Sender is the FreeSWITCH command connection (esl.Client, adapted).
type Sender interface {
	// StartJob sends a bgapi command and returns once FreeSWITCH accepted it.
	StartJob(ctx context.Context, cmd, args, jobUUID string) (Job, error)
	API(ctx context.Context, cmd string) (string, error)
}

// Job is an accepted bgapi job (esl.Job).
type Job interface {
	Wait(ctx context.Context) (string, error)
}

// ErrOutcomeUnknown is what a Job's Wait wraps when the job may have run but its
// result cannot be known (the switch's connection failed after the command was
// written): the message may still reach the device, so it is not sent again at
// once (docs/decisions.md §19). The switch's adapter maps its own error to it,
// so relay imports no switch's client.
var ErrOutcomeUnknown = errors.New("relay: job outcome unknown")

// Presence is the reachability map as relay sees it.
type Presence interface {
	// Deliverable reports whether aor is registered and not known unreachable.
	Deliverable(aor string) bool
	// ObserveSent feeds a delivery outcome back as evidence; sentAt is when the
	// send started, so a registration made since is not judged by it. The
	// outcome type is presence's: one vocabulary for what a send says about a
	// recipient (presence.Map implements this interface as it is).
	ObserveSent(ctx context.Context, aor string, o presence.Outcome, sentAt time.Time) error
}

// Prober checks a recipient before relay sends to it (docs/decisions.md §20): when its last proof
// of life is old, its contacts are probed with OPTIONS first, so a message to a
// phone that vanished a second ago is kept instead of thrown at a dead contact for
// 20 s. false means a probe went unanswered.
type Prober interface {
	Check(ctx context.Context, aor string) bool
}

// Direct sends a message straight to the recipient's device over sipsilo's own
// SIP socket, when that device answers sipsilo's OPTIONS (docs/decisions.md §20): one round trip,
// no 100 ms floor. ok is false when the message must go through FreeSWITCH. Send
// returns once the request left; wait returns the final SIP status, or an error
// when none came in time (the device may still have received it).
type Direct interface {
	Send(ctx context.Context, m *kv.Message) (wait func(context.Context) (int, error), ok bool, err error)
	// Ready reports whether aor's device can be reached directly now, i.e.
	// whether Send would take its next message; it sizes the window.
	Ready(aor string) bool
}

// Delivery paths, for Observer.
const (
	PathESL    = "esl"    // bgapi chat through FreeSWITCH
	PathDirect = "direct" // sipsilo's own MESSAGE to the device (docs/decisions.md §20)
)

// Observer is told of each confirmed delivery, for metrics: the path it took and
// the time from intake to the device's 2xx being recorded. It is called from the
// send's goroutine and must not block.
type Observer interface {
	Delivered(path string, sinceReceived time.Duration)
}

// Config tunes delivery. Zero values take the defaults noted.
type Config struct {
	// Window is how many sends may be in flight per recipient; 1 is strict FIFO.
	// Each confirmed send through FreeSWITCH takes at least 100 ms (≈ 120 ms
	// measured on 1.10.12), so the window is what lets a backlog drain faster than
	// 10 per second: 16 drains 1,000 in ≈ 9 s, 4 took ≈ 33 s (BENCHMARKS.md).
	Window int // default 16
	// DirectWindow is the window while the recipient's device is reached by the
	// direct path (Direct.Ready): the MESSAGEs out awaiting the device's answer.
	// Up to 4 × as many further attempts are begun ahead, so that their fsync is
	// not between one answer and the next send (docs/decisions.md §20); 4 drains
	// 1,000 as fast as 16 or 64, and more only burst the phone.
	DirectWindow int // default 4, or Window if that is smaller
	// MaxInFlight caps sends out awaiting their answer over all recipients
	// (attempts begun ahead do not count); each is a FreeSWITCH thread while it
	// waits for the device.
	MaxInFlight int // default 256
	// Settle: a message younger than this is not sent yet, so that its sender's
	// messages still on FreeSWITCH's other chat thread are queued in order before it
	// (docs/decisions.md §2). Zero sends at once; sipsilo serve's default is 20 ms.
	Settle time.Duration
	// RetryMin and RetryMax bound the backoff after a refusal, doubling per refusal.
	RetryMin time.Duration // default 1 s
	RetryMax time.Duration // default 5 min
	// DeadAfter refusals by a live recipient dead-letter a message.
	DeadAfter int // default 5
	// NoAnswerAfter: an error that took at least this long is FreeSWITCH giving up
	// waiting (≈20 s), not a refusal.
	NoAnswerAfter time.Duration // default 15 s
	// TimerF: after a send that timed out or whose result was lost, FreeSWITCH keeps
	// retransmitting it for up to Timer F; sending again before then could deliver
	// it twice.
	TimerF time.Duration // default 32 s
	// SendTimeout bounds the wait for one BACKGROUND_JOB.
	SendTimeout time.Duration // default 40 s
	// DrainTimeout bounds the wait for results in flight at shutdown.
	DrainTimeout time.Duration // default 5 s
	// SweepEvery is how often queued messages are checked for expiry, besides
	// the check before each send (relay/expire.go).
	SweepEvery time.Duration // default 1 min
	// Notices to senders; off unless Notices.From is set.
	Notices NoticeConfig
	// Prober and Direct are optional (nil: every send goes through FreeSWITCH
	// without a probe).
	Prober Prober
	Direct Direct
	// DirectOnly says the switch cannot carry a confirmed delivery (Asterisk,
	// docs/decisions.md §33): a recipient's messages wait, with no attempt
	// recorded, until Direct is ready for its device, checked every RetryMin.
	DirectOnly bool
	// Devices, if set, runs a lane per device for the per-device copies of
	// messages (docs/decisions.md §29); nil: every message is sent on its
	// recipient's lane, copies or not. A Prober or Direct that also implements
	// DeviceProber or DeviceDirect serves the device lanes too.
	Devices Devices
	// Observer is optional (nil: nothing is observed).
	Observer Observer
	Logger   *slog.Logger
	Now      func() time.Time
}

func (c *Config) setDefaults() {
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&c.Window, 16)
	defInt(&c.DirectWindow, min(4, c.Window))
	defInt(&c.MaxInFlight, 256)
	defInt(&c.DeadAfter, 5)
	c.Settle = max(c.Settle, 0)
	def(&c.RetryMin, time.Second)
	def(&c.RetryMax, 5*time.Minute)
	def(&c.NoAnswerAfter, 15*time.Second)
	def(&c.TimerF, 32*time.Second)
	def(&c.SendTimeout, 40*time.Second)
	def(&c.DrainTimeout, 5*time.Second)
	def(&c.SweepEvery, time.Minute)
	c.Window = min(c.Window, c.MaxInFlight)
	c.DirectWindow = min(c.DirectWindow, c.MaxInFlight)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}
