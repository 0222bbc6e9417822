package fsemu

import (
	"slices"
	"strconv"
	"strings"
)

// capturedModules are the modules the captured FreeSWITCH loaded (captures README,
// Versions): what a Switch without SwitchOptions.Modules has.
var capturedModules = []string{"mod_console", "mod_logfile", "mod_xml_curl", "mod_event_socket", "mod_sofia",
	"mod_loopback", "mod_commands", "mod_dptools", "mod_sms", "mod_dialplan_xml"}

// Loaded is switch_loadable_module_exists for this switch.
func (s *Switch) Loaded(module string) bool {
	if s.opts.Modules == nil {
		return slices.Contains(capturedModules, module)
	}
	return slices.Contains(s.opts.Modules, module)
}

// moduleExistsAPI is mod_commands module_exists_function: "true" or "false", and
// nothing at all (ESL then says "-ERR no reply") without an argument.
func (s *Switch) moduleExistsAPI(args string) string {
	if args == "" {
		return ""
	}
	if s.Loaded(args) {
		return "true"
	}
	return "false"
}

// chatplan runs one message through what the switch has: no chatplan without
// mod_sms; else the xml_curl binding (with mod_xml_curl), then the static chatplan
// when the binding yields nothing usable.
func (s *Switch) chatplan(ev *Event) (*Outcome, error) {
	if !s.Loaded("mod_sms") {
		return ApplyChatplan(nil, ev) // mod_sms's GLOBAL_SMS interface is missing: direct delivery only
	}
	reason := "no chatplan binding"
	if s.opts.XMLCurl != nil && s.Loaded("mod_xml_curl") {
		out, res, err := s.opts.XMLCurl.Process(s.base, ev)
		if err != nil || !res.Fallback || s.opts.staticChatplan == nil {
			return out, err
		}
		reason = res.Reason
	}
	if s.opts.staticChatplan == nil {
		return ApplyChatplan(nil, ev)
	}
	return applyStatic(s.opts.staticChatplan, ev, reason), nil
}

// applyStatic runs the static chatplan section (conf/chatplan/*.xml) against ev,
// as switch_xml_locate's fall back to the in-memory XML does.
func applyStatic(section *xnode, ev *Event, reason string) *Outcome {
	r := &run{ev: ev.Clone(), out: &Outcome{Vars: map[string]string{}}}
	r.out.Event = r.ev
	r.log("static chatplan used: " + reason)
	actions, why := r.hunt(section)
	var out *Outcome
	if len(actions) == 0 {
		r.log("SMS chatplan no actions found")
		out = r.finish(false, why)
	} else {
		for _, a := range actions {
			if !r.exec(a.app, a.data) {
				break
			}
		}
		out = r.finish(true, "")
	}
	out.Fallback = true
	if out.Reason == "" {
		out.Reason = reason
	}
	return out
}

// renderProfileStatus is `sofia status profile <p>` without reg (mod_sofia.c
// cmd_status, 1.10): the profile summary. Values the emulator has no notion of
// are the vanilla internal profile's; the last line is REGISTRATIONS, with no
// closing rule.
func (s *Switch) renderProfileStatus() string {
	host, port := splitSource(s.SIPAddr())
	url := "sip:mod_sofia@" + host + ":" + strconv.Itoa(port)
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(statusLine, "\n") + "\n")
	for _, kv := range [][2]string{
		{"Name             ", s.opts.Profile},
		{"Domain Name      ", "N/A"},
		{"Auto-NAT         ", "false"},
		{"DBName           ", "sofia_reg_" + s.opts.Profile},
		{"Pres Hosts       ", s.opts.Domain},
		{"Dialplan         ", "XML"},
		{"Context          ", s.opts.Context},
		{"Challenge Realm  ", "auto_from"},
		{"RTP-IP           ", host},
		{"SIP-IP           ", host},
		{"URL              ", url},
		{"BIND-URL         ", url + ";maddr=" + host},
		{"HOLD-MUSIC       ", "local_stream://moh"},
		{"OUTBOUND-PROXY   ", "N/A"},
		{"CODECS IN        ", "OPUS,G722,PCMU,PCMA,H264,VP8"},
		{"CODECS OUT       ", "OPUS,G722,PCMU,PCMA,H264,VP8"},
		{"TEL-EVENT        ", "101"},
		{"DTMF-MODE        ", "rfc2833"},
		{"CNG              ", "13"},
		{"SESSION-TO       ", "0"},
		{"MAX-DIALOG       ", "0"},
		{"NOMEDIA          ", "false"},
		{"LATE-NEG         ", "true"},
		{"PROXY-MEDIA      ", "false"},
		{"ZRTP-PASSTHRU    ", "true"},
		{"AGGRESSIVENAT    ", "false"},
		{"CALLS-IN         ", "0"},
		{"FAILED-CALLS-IN  ", "0"},
		{"CALLS-OUT        ", "0"},
		{"FAILED-CALLS-OUT ", "0"},
		{"REGISTRATIONS    ", strconv.Itoa(len(s.Registrations()))},
	} {
		b.WriteString(kv[0] + "\t" + kv[1] + "\n")
	}
	return b.String()
}
