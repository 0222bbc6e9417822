package fsemu

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

const (
	chatSent   = "Sent"
	chatFailed = "Error! Message Not Sent"
)

// chatAPI is mod_dptools chat_api_function: `sip|from|to|body[|type]`,
// split by switch_separate_string, then switch_core_chat_send_args(proto,
// "global", from, to, "", body, type, "", blocking=TRUE). It blocks until
// the delivery result is known (esl_06, esl_09 api_chat, esl_14).
// started is called once the MESSAGE is on its way (or known not to go), so
// that the next bgapi job may start: see ESLServer.HandleOrderedAPI.
func (s *Switch) chatAPI(args string, started func()) string {
	s.chats.Add(1)
	defer started()
	argv := []string{}
	if args != "" {
		argv = SeparateString(args, '|', 5)
	}
	if len(argv) < 4 {
		return "Invalid"
	}
	proto, from, to, body := argv[0], argv[1], argv[2], argv[3]
	ctype := ""
	if len(argv) > 4 {
		ctype = argv[4]
	}
	// switch_core_chat_send_args builds the event (Event-Sequence taken
	// now); switch_core_chat_send adds dest_proto.
	hs := []Header{{"proto", "global"}, {"from", from}, {"to", to}}
	if ctype != "" {
		hs = append(hs, Header{"type", ctype})
	}
	hs = append(hs, Header{"skip_global_process", "true"}, Header{"blocking", "true"}, Header{"dest_proto", proto})
	ev := s.newEvent("MESSAGE", "", [3]string{"switch_loadable_module.c", "switch_core_chat_send_args", "1039"}, hs...)
	ev.Body = body
	code, ok := s.chatSend(proto, from, to, ctype, body, started)
	if ok {
		ev.Set("Delivery-Result-Code", strconv.Itoa(code))
	}
	failed := !ok || code < 200 || code > 299
	ev.Set("Delivery-Failure", strconv.FormatBool(failed))
	s.esl.Fire(ev)
	if failed {
		return chatFailed
	}
	return chatSent
}

// chatSend is sofia_presence_chat_send in blocking mode: no registration
// gives sofia::error at once (with the quirky Chat-Send-From display name
// and Chat-Send-Profile = the from host, esl_07) and no result code;
// otherwise a MESSAGE goes to each contact and the result is polled every
// ChatResultFloor until ChatGiveUp (code 0). ok is false when nothing was
// sent.
func (s *Switch) chatSend(proto, from, to, ctype, body string, started func()) (code int, ok bool) {
	fromUser, fromHost, _ := strings.Cut(strings.TrimPrefix(from, "sip:"), "@")
	var regs []registration
	if profile, contact, isContact := s.contactTarget(to); isContact {
		// <profile>/sip:<contact>: that one contact, no registration check.
		if r, ok := contactRegistration(contact); ok && strings.EqualFold(proto, "sip") && profile == s.opts.Profile {
			regs = []registration{r}
		}
	} else if strings.EqualFold(proto, "sip") {
		toUser, toHost, _ := strings.Cut(strings.TrimPrefix(to, "sip:"), "@")
		regs = s.lookup(toUser, toHost)
	}
	if len(regs) == 0 {
		s.esl.Fire(s.noRecipient(to, `"`+fromUser+`" <sip:`+fromUser+"@"+fromHost+">", fromHost, body))
		return 0, false
	}
	if ctype == "" {
		ctype = "text/html" // sofia's default without a 5th argument
	}
	// One MESSAGE per row, in row order. The status sofia polls is not reset
	// between rows: once a row answered, later rows are sent without waiting,
	// and the first answer is the result (an error when the first device
	// refused, though another got the message).
	for _, r := range regs {
		hdr := &sip.FromHeader{DisplayName: fromUser, Address: sip.Uri{Scheme: "sip", User: fromUser, Host: fromHost}}
		hdr.Params = sip.NewParams()
		hdr.Params.Add("tag", sip.GenerateTagN(13))
		result := s.sendChat(r, hdr, ctype, []byte(body))
		started()
		if code == 0 {
			code = s.await(result)
		}
	}
	return code, true
}

// contactTarget splits a chat destination "<profile>/sip:<contact>" (what
// sofia_contact gives, without its "sofia/"); isContact is false for user@host.
func (s *Switch) contactTarget(to string) (profile, contact string, isContact bool) {
	profile, contact, ok := strings.Cut(to, "/")
	if !ok || !strings.HasPrefix(strings.ToLower(contact), "sip:") {
		return "", "", false
	}
	return profile, contact, true
}

// contactRegistration is the registration-like target of a chat to a contact
// URI: FreeSWITCH's own fs_nat and fs_path parameters are not part of the URI it
// sends to.
func contactRegistration(contact string) (registration, bool) {
	var u sip.Uri
	if err := sip.ParseUri(contact, &u); err != nil || u.Host == "" {
		return registration{}, false
	}
	if u.UriParams != nil {
		for _, k := range []string{"fs_nat", "fs_path"} {
			u.UriParams.Remove(k)
		}
	}
	return registration{uri: u}, true
}

// await is the blocking wait of sofia_presence_chat_send: it looks at the
// result every ChatResultFloor (100 ms) so a result is never seen sooner
// than that and always on a poll tick, and gives up after ChatGiveUp with 0.
func (s *Switch) await(result <-chan int) int {
	start := time.Now()
	giveUp := time.NewTimer(s.opts.ChatGiveUp)
	defer giveUp.Stop()
	code := 0
	select {
	case code = <-result:
	case <-giveUp.C:
		return 0
	case <-s.done:
		return 0
	}
	if floor := s.opts.ChatResultFloor; floor > 0 {
		elapsed := time.Since(start)
		ticks := (elapsed + floor - 1) / floor
		if ticks < 1 {
			ticks = 1
		}
		wait := time.Duration(ticks)*floor - elapsed
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
		}
	}
	return code
}
