package relay

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// NoticeConfig turns on notices to senders. They are chat messages from a
// service address, sent through `bgapi chat` (whose arguments FreeSWITCH does
// not expand; never through chatplan action data, docs/decisions.md §10).
type NoticeConfig struct {
	// From is the service address (user@host) notices come from; empty: none.
	From string
	// Stored: "stored for later delivery", once per message, when the recipient
	// was not deliverable as the message was stored or its first delivery
	// attempt was not confirmed.
	Stored bool
	// Expired: "expired undelivered", when a message expires.
	Expired bool
}

// Notice texts: fixed, plus the recipient's address; never the message's text.
const (
	noticeStoredText  = "Your message to %s could not be delivered yet. It is stored and will be delivered when the recipient is reachable."
	noticeExpiredText = "Your message to %s expired undelivered."
)

// noticeQueue bounds the notices waiting to go out; more are dropped (and
// counted), never block delivery.
const noticeQueue = 1024

// noticeSends caps notices being sent at once: each is a FreeSWITCH chat that
// may wait ≈20 s for an absent sender.
const noticeSends = 16

type notice struct {
	m    *kv.Message
	kind string
}

// Stored is told about each message sipsilo took over (intake and the admin
// API): one whose body is final already (injected) is sent without waiting for
// the body tracker, and a recipient not deliverable now earns the sender a
// "stored" notice.
func (r *Relay) Stored(m *kv.Message) {
	if m.BodyFinal {
		r.Wake(m.To)
	}
	if r.cfg.Notices.Stored && !r.pres.Deliverable(m.To) {
		r.notify(m, kv.NoticeStored)
	}
}

// notify queues a notice of kind about m, unless notices of that kind are off
// or it would loop: nothing about a message from or to the service address
// (a notice's own sender, were it ever stored), nothing to an empty sender.
func (r *Relay) notify(m *kv.Message, kind string) {
	n := r.cfg.Notices
	on := (kind == kv.NoticeStored && n.Stored) || (kind == kv.NoticeExpired && n.Expired)
	if !on || n.From == "" || m.From == "" || slices.Contains(m.Notices, kind) ||
		strings.EqualFold(m.From, n.From) || strings.EqualFold(m.To, n.From) {
		return
	}
	// Only what the notice needs: a queued notice does not hold a body.
	brief := &kv.Message{ID: m.ID, From: m.From, To: m.To}
	select {
	case r.notices <- notice{m: brief, kind: kind}:
	default:
		r.c.noticesDropped.Add(1)
		r.log.Warn("notice queue full; notice dropped", "id", m.ID, "kind", kind)
	}
}

// sendNotices sends the queued notices until ctx ends; what is still queued
// then is not sent (a notice is a courtesy, never retried).
func (r *Relay) sendNotices(ctx context.Context) {
	sem := make(chan struct{}, noticeSends)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var n notice
		select {
		case <-ctx.Done():
			return
		case n = <-r.notices:
		}
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r.sendNotice(ctx, n)
		})
	}
}

// sendNotice records the notice on the message first, so that it goes at most
// once (a crash in between loses it rather than repeat it), then sends it.
func (r *Relay) sendNotice(ctx context.Context, n notice) {
	log := r.log.With("id", n.m.ID, "notice", n.kind)
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	first, err := r.store.MarkNotice(mctx, n.m.ID, n.kind)
	cancel()
	if err != nil {
		r.c.storeErrors.Add(1)
		log.Error("cannot record notice; not sent", "err", err)
		return
	}
	if !first {
		return
	}
	text := noticeStoredText
	if n.kind == kv.NoticeExpired {
		text = noticeExpiredText
	}
	body := []byte(strings.Replace(text, "%s", n.m.To, 1))
	sctx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
	defer cancel()
	if r.cfg.DirectOnly {
		r.sendNoticeDirect(sctx, n, body, log)
		return
	}
	job, err := r.send.StartJob(sctx, "chat", ChatArgs(r.cfg.Notices.From, n.m.From, body, "text/plain"),
		"notice-"+n.kind+"-"+n.m.ID)
	reply := ""
	if err == nil {
		reply, err = job.Wait(sctx)
	}
	if err != nil || strings.TrimSpace(reply) != chatSent {
		r.c.noticesFailed.Add(1)
		log.Info("notice not delivered", "reply", strings.TrimSpace(reply), "err", err)
		return
	}
	r.c.notices.Add(1)
	log.Debug("notice delivered", "to", n.m.From)
}

// sendNoticeDirect sends a notice over the direct path, the only one that can
// confirm a delivery beside Asterisk (docs/decisions.md §33): to the sender's
// device when it answers sipsilo's OPTIONS; otherwise it is not sent (notices
// go at most once, never retried).
func (r *Relay) sendNoticeDirect(ctx context.Context, n notice, body []byte, log *slog.Logger) {
	nm := &kv.Message{ID: "notice-" + n.kind + "-" + n.m.ID, From: r.cfg.Notices.From, To: n.m.From,
		ContentType: "text/plain", Body: body}
	status, err := 0, errors.New("the sender's device does not answer sipsilo directly")
	if r.cfg.Direct != nil {
		if wait, ok, serr := r.cfg.Direct.Send(ctx, nm); ok && serr == nil {
			status, err = wait(ctx)
		} else if serr != nil {
			err = serr
		}
	}
	if err != nil || status < 200 || status >= 300 {
		r.c.noticesFailed.Add(1)
		log.Info("notice not delivered", "status", status, "err", err)
		return
	}
	r.c.notices.Add(1)
	log.Debug("notice delivered", "to", n.m.From)
}
