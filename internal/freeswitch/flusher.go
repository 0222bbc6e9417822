package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sipsilo/sipsilo/presence"
)

// API runs one FreeSWITCH API command (esl.Client).
type API interface {
	API(ctx context.Context, cmd string) (string, error)
}

// Flusher asks FreeSWITCH to drop registrations sipsilo's pinger found dead
// (`sofia profile <p> flush_inbound_reg <call-id>`), as the seed paper's
// presence server removed users that stopped answering. It runs the commands
// one at a time off the pinger's goroutines.
type Flusher struct {
	api     API
	profile string // when the registration does not name one
	reqs    chan flushReq
	log     *slog.Logger
	// Still, if set, is asked just before a flush whether the registration is
	// still the dead one (presence.Map.StillUnreachable): a phone that sent a
	// REGISTER since, with the same Call-ID, must not be dropped with it.
	Still func(aor string, r presence.Registration) bool
}

type flushReq struct {
	aor string
	r   presence.Registration
}

// NewFlusher returns a Flusher that uses profile for registrations that name
// none; nothing is sent until Run.
func NewFlusher(api API, profile string, log *slog.Logger) *Flusher {
	return &Flusher{api: api, profile: profile, reqs: make(chan flushReq, 256),
		log: log.With("component", "flush")}
}

// Request queues a flush (presence.Config.OnUnreachable); when the queue is full
// the registration is left to FreeSWITCH's own expiry and the miss is logged.
func (f *Flusher) Request(aor string, r presence.Registration) {
	select {
	case f.reqs <- flushReq{aor, r}:
	default:
		f.log.Warn("flush queue full; leaving the registration to FreeSWITCH's expiry", "call_id", r.CallID)
	}
}

// Run sends the queued flushes until ctx ends, then returns nil.
func (f *Flusher) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case q := <-f.reqs:
			r := q.r
			if f.Still != nil && !f.Still(q.aor, r) {
				f.log.Debug("registration came back before its flush; kept", "call_id", r.CallID)
				continue
			}
			p := r.Profile
			if p == "" {
				p = f.profile
			}
			if err := flushable(p, r.CallID, q.aor); err != nil {
				f.log.Warn("registration not flushed; left to FreeSWITCH's expiry", "err", err)
				continue
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			out, err := f.api.API(actx, "sofia profile "+p+" flush_inbound_reg "+r.CallID)
			cancel()
			if err != nil {
				f.log.Warn("flush_inbound_reg failed", "call_id", r.CallID, "err", err, "reply", out)
				continue
			}
			f.log.Info("asked FreeSWITCH to drop an unreachable registration", "call_id", r.CallID)
		}
	}
}

// flushable refuses a flush FreeSWITCH would widen beyond the one registration
// (docs/decisions.md §37). `flush_inbound_reg` takes its argument apart:
// nothing after it flushes every registration of the profile, an argument
// `reboot` does that and reboots the phones, and a Call-ID with an `@` also
// deletes every registration of the user before the `@` in the domain after
// it (sofia_reg_expire_call_id: `call_id='…' or (sip_user='…' and
// sip_host='…')`). A Call-ID comes from the phone: it must be one word of
// RFC 3261's word characters, without quotes, and its `@` must not name the
// domain of the user being flushed.
func flushable(profile, callID, aor string) error {
	switch {
	case profile == "" || strings.ContainsFunc(profile, notWordChar):
		return errors.New("profile name is not one word")
	case callID == "":
		return errors.New("registration without a Call-ID")
	case len(callID) > 256:
		return fmt.Errorf("Call-ID of %d bytes", len(callID))
	case strings.ContainsFunc(callID, notWordChar):
		return errors.New("Call-ID with a character FreeSWITCH's command line would split or unquote")
	case strings.EqualFold(callID, "reboot"):
		return errors.New(`Call-ID "reboot" would flush and reboot every phone of the profile`)
	}
	if user, host, ok := strings.Cut(callID, "@"); ok {
		_, domain, _ := strings.Cut(aor, "@")
		if user == "" || host == "" || strings.EqualFold(host, domain) {
			return errors.New("Call-ID's user@host would flush other registrations of the domain")
		}
	}
	return nil
}

// notWordChar is false for RFC 3261's word characters but the quotes and the
// backslash, which FreeSWITCH's argument splitter treats specially.
func notWordChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("-.!%*_+`~()<>:/[]?{}@", r)
}
