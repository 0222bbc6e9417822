package fsemu

import (
	"slices"
	"strconv"
	"strings"
)

// capturedModules are the modules the captured FreeSWITCH loaded (testdata/esl): what a Switch without SwitchOptions.Modules has.
var capturedModules = []string{"mod_console", "mod_logfile", "mod_xml_curl", "mod_event_socket", "mod_sofia",
	"mod_loopback", "mod_commands", "mod_dptools", "mod_sms", "mod_dialplan_xml"}

// Loaded is switch_loadable_module_exists for this switch.
func (s *Switch) Loaded(module string) bool {
	return slices.Contains(s.liveXML().modules, module)
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
	static := s.liveXML().chatplan
	if x := s.liveXML().xmlCurl; x != nil && s.Loaded("mod_xml_curl") {
		out, res, err := x.Process(s.base, ev)
		if err != nil || !res.Fallback || static == nil {
			return out, err
		}
		reason = res.Reason
	}
	if static == nil {
		return ApplyChatplan(nil, ev)
	}
	return applyStatic(static, ev, reason), nil
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

// profileInfo is the profile summary both status commands print, in order:
// text label, XML element, value. Values the emulator has no notion of are the
// vanilla internal profile's.
func (s *Switch) profileInfo() [][3]string {
	host, port := splitSource(s.SIPAddr())
	url := "sip:mod_sofia@" + host + ":" + strconv.Itoa(port)
	codecs := "OPUS,G722,PCMU,PCMA,H264,VP8"
	return [][3]string{
		{"Name             ", "name", s.opts.Profile},
		{"Domain Name      ", "domain-name", "N/A"},
		{"Auto-NAT         ", "auto-nat", "false"},
		{"DBName           ", "db-name", "sofia_reg_" + s.opts.Profile},
		{"Pres Hosts       ", "pres-hosts", s.opts.Domain},
		{"Dialplan         ", "dialplan", "XML"},
		{"Context          ", "context", s.liveXML().context},
		{"Challenge Realm  ", "challenge-realm", "auto_from"},
		{"RTP-IP           ", "rtp-ip", host},
		{"SIP-IP           ", "sip-ip", host},
		{"URL              ", "url", url},
		{"BIND-URL         ", "bind-url", url + ";maddr=" + host},
		{"HOLD-MUSIC       ", "hold-music", "local_stream://moh"},
		{"OUTBOUND-PROXY   ", "outbound-proxy", "N/A"},
		{"CODECS IN        ", "inbound-codecs", codecs},
		{"CODECS OUT       ", "outbound-codecs", codecs},
		{"TEL-EVENT        ", "tel-event", "101"},
		{"DTMF-MODE        ", "dtmf-mode", "rfc2833"},
		{"CNG              ", "cng", "13"},
		{"SESSION-TO       ", "session-to", "0"},
		{"MAX-DIALOG       ", "max-dialog", "0"},
		{"NOMEDIA          ", "nomedia", "false"},
		{"LATE-NEG         ", "late-neg", "true"},
		{"PROXY-MEDIA      ", "proxy-media", "false"},
		{"ZRTP-PASSTHRU    ", "zrtp-passthru", "true"},
		{"AGGRESSIVENAT    ", "aggressive-nat", "false"},
		{"CALLS-IN         ", "calls-in", "0"},
		{"FAILED-CALLS-IN  ", "failed-calls-in", "0"},
		{"CALLS-OUT        ", "calls-out", "0"},
		{"FAILED-CALLS-OUT ", "failed-calls-out", "0"},
		{"REGISTRATIONS    ", "registrations", strconv.Itoa(len(s.Registrations()))},
	}
}

// renderProfileXMLStatus is `sofia xmlstatus profile <p>` without reg
// (cmd_xml_status, 1.10): the profile-info block, values not escaped (as in C).
func (s *Switch) renderProfileXMLStatus() string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<profile>\n  <profile-info>\n")
	for _, kv := range s.profileInfo() {
		b.WriteString("    <" + kv[1] + ">" + kv[2] + "</" + kv[1] + ">\n")
	}
	b.WriteString("  </profile-info>\n</profile>\n")
	return b.String()
}

// renderProfileStatus is `sofia status profile <p>` without reg (mod_sofia.c
// cmd_status, 1.10): a rule, then the profile summary; the last line is
// REGISTRATIONS, with no closing rule.
func (s *Switch) renderProfileStatus() string {
	var b strings.Builder
	b.WriteString(statusLine)
	for _, kv := range s.profileInfo() {
		b.WriteString(kv[0] + "\t" + kv[2] + "\n")
	}
	return b.String()
}
