package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/emiago/sipgo/sip"
	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/internal/asterisk"
	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// newAsterisk is New for --pbx asterisk: the event socket settings play no
// part; the AMI's do.
func newAsterisk(cfg Config, logOut io.Writer, mode presence.PingMode) (*Daemon, error) {
	a := cfg.Asterisk
	if a.AMIAddr == "" || a.AMIUser == "" || a.Domain == "" {
		return nil, errors.New("--pbx asterisk needs --ami, --ami-user and --ast-domain")
	}
	if mode == presence.PingOff || !cfg.Ping.Direct {
		// Asterisk cannot confirm a delivery (docs/decisions.md §33): without
		// sipsilo's own pinger and direct path nothing would ever be delivered.
		return nil, errors.New("--pbx asterisk delivers only over sipsilo's direct path: it needs --ping all or direct, and --direct")
	}
	// Asterisk hands sipsilo bodies of up to 1,023 bytes (docs/decisions.md
	// §31), which with their headers pass sipgo's UDP limit of 1,300 bytes;
	// the direct path is the only one here, so lift the limit (set before any
	// SIP socket exists). Asterisk itself sends such MESSAGEs over UDP.
	sip.UDPMTUSize = 65535
	d := &Daemon{cfg: cfg, log: newLogger(cfg, logOut), mode: mode}
	if err := d.checkMySQL(); err != nil {
		return nil, err
	}
	return d, nil
}

func astSender() relay.Sender { return asterisk.DirectOnly{} }

// asteriskParts are the Asterisk adapter's components: the AMI client and
// the contact translation that feeds presence.
type asteriskParts struct {
	cfg    AsteriskConfig
	client *asterisk.Client
	reach  *asterisk.Reach
	log    *slog.Logger
	queued func(*kv.Message)
	// outOfReach: a recipient's device sipsilo's direct path cannot reach
	// (docs/decisions.md §33); its messages stay with Asterisk.
	outOfReach func(aor string) bool
}

func (d *Daemon) assembleAsterisk(p *parts) *asteriskParts {
	a := &asteriskParts{cfg: d.cfg.Asterisk, log: d.log}
	a.client = asterisk.New(asterisk.Config{Addr: a.cfg.AMIAddr, User: a.cfg.AMIUser, Secret: a.cfg.AMISecret,
		Events: true, Logger: d.log,
		OnEvent:   func(s string, ev asterisk.Message) { a.reach.OnEvent(s, ev) },
		OnConnect: func(ctx context.Context, s string) { a.reach.OnConnect(ctx, s); p.relay.WakeAll() }})
	a.reach = asterisk.NewReach(asterisk.ReachConfig{AMI: a.client, Presence: p.pres, Domain: a.cfg.Domain, Logger: d.log})
	a.queued = p.relay.Stored
	if p.reach != nil { // always, since --pbx asterisk requires the pinger
		a.outOfReach = p.reach.OutOfReach
	}
	return a
}

// intake adds the Asterisk intake to the HTTP routes, with the chatplan's
// policy and observer; a message it owns goes straight to relay (its body is
// exact at intake, no event will bring another).
func (a *asteriskParts) intake(e *echo.Echo, policy handlers.ChatplanConfig, store *kv.Store) error {
	policy.Queued = a.queued
	// Asterisk gives up after the context's httptimeout: the intake's own
	// deadline is well before it, whatever --answer-timeout says for FreeSWITCH.
	policy.AnswerTimeout = handlers.DefaultAsteriskAnswerTimeout
	return handlers.RegisterAsterisk(e, handlers.AsteriskConfig{Policy: policy, Domain: a.cfg.Domain,
		OutOfReach: a.outOfReach}, store, a.log)
}

func (a *asteriskParts) start(g *group) {
	g.run("ami", a.client.Run)
	g.run("ami contacts", a.reach.Run)
}

// ready is /readyz's answer for AMI.
func (a *asteriskParts) ready(context.Context) error {
	if a.client.Connected() {
		return nil
	}
	if err := a.client.Err(); err != nil {
		if errors.Is(err, asterisk.ErrAuth) {
			return errors.New("AMI login refused: Asterisk rejected --ami-user/--ami-secret (SIPSILO_AMI_SECRET)")
		}
		return fmt.Errorf("not connected to Asterisk's manager: %w", err)
	}
	return errors.New("not connected to Asterisk's manager")
}
