package fsemu

import (
	"github.com/emiago/sipgo/sip"
)

// inboundChat is one accepted MESSAGE on its way to a chat thread.
type inboundChat struct {
	ev   *Event          // the MESSAGE event as built by sofia
	from *sip.FromHeader // the sender's From, tag included (reused on delivery)
	body []byte          // the exact body
	src  registration    // sender: where replies go
}

// handleMessage is sofia_presence_handle_sip_i_message with auth-messages
// on: 407 challenge, then (authenticated) sofia::pre_register with the
// MESSAGE-auth quirk (finding 10), 202 Accepted before any routing
// (finding 3), and the event queued to a chat thread.
func (s *Switch) handleMessage(req *sip.Request, tx sip.ServerTransaction) {
	user, res := s.checkAuth(req, "Proxy-Authorization")
	switch res {
	case authMissing, authStale:
		s.respond(req, tx, 407, "Proxy Authentication Required", sip.NewHeader("Proxy-Authenticate", s.challenge()))
		return
	case authForbidden:
		s.respond(req, tx, 403, "Forbidden")
		return
	}
	from, to := req.From(), req.To()
	if from == nil || to == nil {
		s.respond(req, tx, 400, "Bad Request")
		return
	}
	ip, port := splitSource(req.Source())
	sender := registration{}
	sender.User, sender.Host = from.Address.User, from.Address.Host
	sender.CallID = req.CallID().Value()
	sender.NetworkIP, sender.NetworkPort = ip, port
	if h := req.GetHeader("User-Agent"); h != nil {
		sender.UserAgent = h.Value()
	}
	sender.authUser = user
	// sofia handles a profile's SIP on one thread, so the MESSAGE event (and its
	// Event-Sequence) of a message answered 202 is made before the sender's next
	// message is read; sipgo runs handlers concurrently, so serialise that part.
	// Seen on FreeSWITCH: Event-Sequence is in send order even when the chat threads
	// reorder the chatplan requests.
	s.sofiaMu.Lock()
	locked := true
	defer func() {
		if locked {
			s.sofiaMu.Unlock()
		}
	}()
	// from-user is the recipient, to-user the sender (finding 10).
	s.esl.Fire(s.preRegister(&sender, to.Address.User, to.Address.Host, from.Address.User, from.Address.Host, false))
	s.respond(req, tx, 202, "Accepted", sip.NewHeader("Contact", "<sip:"+s.opts.Domain+">"))

	ctype := "text/plain"
	if h := req.ContentType(); h != nil {
		ctype = h.Value()
	}
	id := s.esl.identity()
	fromHdr := from.Value()
	ev := NewMessageEvent(MessageParams{
		CoreUUID:    id.coreUUID,
		Sequence:    s.esl.NextSequence(),
		Timestamp:   s.esl.opts.Clock(),
		FromUser:    from.Address.User,
		FromHost:    from.Address.Host,
		ToUser:      to.Address.User,
		ToHost:      to.Address.Host,
		FromSIPIP:   ip,
		FromSIPPort: port,
		FromFull:    fromHdr,
		Context:     s.liveXML().context,
		Profile:     s.opts.Profile,
		ContentType: ctype,
		Login:       s.login(),
		Hostname:    id.hostname,
		Switchname:  id.switchname,
		IPv4:        id.ipv4,
		IPv6:        id.ipv6,
		Body:        string(req.Body()),
	})
	msg := &inboundChat{ev: ev, from: cloneFrom(from), body: append([]byte(nil), req.Body()...), src: sender}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	q := s.chatQ[s.rr%len(s.chatQ)]
	s.rr++
	s.mu.Unlock()
	s.sofiaMu.Unlock()
	locked = false
	select {
	case q <- msg:
	case <-s.done:
	}
}

// chatThread is one of mod_sms's chat threads (switch_core chat_thread_run):
// the chatplan (xml_curl or the static one), then do_chat_send's direct
// delivery, then the MESSAGE event with Nonblocking-Delivery.
func (s *Switch) chatThread(q chan *inboundChat) {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case m := <-q:
			s.route(m)
		}
	}
}

// route runs one message through the chatplan and delivers it (esl_02,
// esl_03, esl_05c, esl_13).
func (s *Switch) route(m *inboundChat) {
	out, err := s.chatplan(m.ev)
	if err != nil || out == nil {
		s.log.Debug("fsemu: chatplan failed", "err", err)
		out, _ = ApplyChatplan(nil, m.ev)
	}
	for _, rep := range out.ReplyEvents {
		s.deliverReply(m, rep)
	}
	ctype := out.Event.Get("type")
	for i := 0; i < out.DirectDeliveries; i++ {
		s.deliver(m, out.Event, ctype)
	}
	ev := out.Event.Clone()
	ev.Set("Nonblocking-Delivery", "true")
	s.esl.Fire(ev)
}

// deliver is sofia_presence_chat_send for a relayed message: a MESSAGE to
// every registered contact, without waiting (Nonblocking-Delivery), or
// sofia::error "no recipient" (line 276) when nobody is registered.
func (s *Switch) deliver(m *inboundChat, ev *Event, ctype string) {
	to := ev.Get("to")
	regs := s.lookup(ev.Get("to_user"), ev.Get("to_host"))
	if len(regs) == 0 {
		s.esl.Fire(s.noRecipient(to, ev.Get("from_full"), s.opts.Profile, ev.Body))
		return
	}
	for _, r := range regs {
		s.sendChat(r, cloneFrom(m.from), ctype, m.body)
	}
}

// deliverReply sends a chatplan `reply` back to the sender's registered
// contacts, From the original recipient (scenario 04).
func (s *Switch) deliverReply(m *inboundChat, rep *Event) {
	s.esl.Fire(rep)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: m.ev.Get("to_user"), Host: m.ev.Get("to_host")}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(13))
	for _, r := range s.lookup(m.src.User, m.src.Host) {
		s.sendChat(r, from, or(rep.Get("type"), "text/plain"), []byte(rep.Body))
	}
}

// noRecipient is the sofia::error event of sofia_presence_chat_send when
// the recipient has no registration (esl_03, esl_07).
func (s *Switch) noRecipient(to, from, profile, body string) *Event {
	ev := s.custom("sofia::error",
		Header{"Error-Type", "chat"},
		Header{"Error-Reason", "no recipient"},
		Header{"Chat-Send-To", to},
		Header{"Chat-Send-From", from},
		Header{"Chat-Send-Profile", profile})
	ev.Body = body
	return ev
}

// cloneFrom copies a From header, so each request owns its own.
func cloneFrom(h *sip.FromHeader) *sip.FromHeader {
	return &sip.FromHeader{DisplayName: h.DisplayName, Address: *h.Address.Clone(), Params: h.Params.Clone()}
}
