package fsemu

import (
	"strconv"
	"strings"
	"time"
)

// sofiaAPI is the part of sofia_function (mod_sofia.c) the emulator knows:
// `xmlstatus profile <p> [reg]`, `status profile <p> [reg]` and
// `profile <p> flush_inbound_reg [<call-id>|<user@host>] [reboot]`.
func (s *Switch) sofiaAPI(args string) string {
	f := strings.Fields(args)
	switch {
	case len(f) >= 4 && f[0] == "xmlstatus" && f[1] == "profile" && f[3] == "reg":
		if f[2] != s.opts.Profile {
			return "<error>Cannot find profile " + f[2] + "</error>\n"
		}
		return renderXMLStatus(s.Registrations(), s.esl.opts.Hostname, time.Now(), time.Local)
	case len(f) >= 4 && f[0] == "status" && f[1] == "profile" && f[3] == "reg":
		if f[2] != s.opts.Profile {
			return "Invalid Profile!\n"
		}
		return renderStatus(s.Registrations(), s.esl.opts.Hostname, time.Now(), time.Local)
	case len(f) == 3 && f[0] == "xmlstatus" && f[1] == "profile":
		if f[2] != s.opts.Profile {
			return "Invalid Profile!\n"
		}
		return s.renderProfileXMLStatus()
	case len(f) == 3 && f[0] == "status" && f[1] == "profile":
		if f[2] != s.opts.Profile {
			return "Invalid Profile!\n"
		}
		return s.renderProfileStatus()
	case len(f) >= 3 && f[0] == "profile" && f[2] == "rescan":
		if f[1] != s.opts.Profile {
			return "Invalid Profile [" + f[1] + "]"
		}
		return s.rescan()
	case len(f) >= 3 && f[0] == "profile" && f[2] == "flush_inbound_reg":
		if f[1] != s.opts.Profile {
			return "Invalid Profile [" + f[1] + "]"
		}
		return s.flushInboundReg(f[3:])
	}
	return "-ERR Unknown command!\n" // not emulated
}

// flushInboundReg is cmd_profile's flush_inbound_reg: by Call-ID, or by
// user@host when the argument has an @, or all. Its reply speaks of call_id
// whatever the argument (esl_08). `reboot` would also send NOTIFY
// check-sync; that NOTIFY is not emulated.
func (s *Switch) flushInboundReg(args []string) string {
	s.mu.Lock()
	s.flushes = append(s.flushes, strings.Join(args, " "))
	s.mu.Unlock()
	reboot := len(args) > 1 && args[1] == "reboot"
	verb := "flushing"
	if reboot {
		verb = "rebooting"
	}
	if len(args) == 0 {
		s.expire(func(*registration) bool { return true })
		return "+OK " + verb + " all registrations\n"
	}
	key := args[0]
	user, host, byAOR := strings.Cut(key, "@")
	s.expire(func(r *registration) bool {
		if r.CallID == key {
			return true
		}
		return byAOR && r.User == user && strings.EqualFold(r.Host, host)
	})
	return "+OK " + verb + " all registrations matching specified call_id\n"
}

// Flushes returns the arguments of every `sofia profile <p>
// flush_inbound_reg [<arg>...]` call on this switch's profile, in call
// order, each as the words after flush_inbound_reg joined by one space:
// "1001@127.0.0.1", "<call-id> reboot", "" for a flush of all. Calls naming
// another profile (answered "Invalid Profile") are not recorded.
func (s *Switch) Flushes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.flushes...)
}

// Chats counts the chat API calls made so far (api and bgapi, valid or
// not), so that a test can assert that no chat was sent.
func (s *Switch) Chats() int { return int(s.chats.Load()) }

// sofiaContactAPI is sofia_contact_function: `[profile/]user@host` gives
// the contacts as sofia/<profile>/<contact URI>, comma separated, or
// error/user_not_registered.
func (s *Switch) sofiaContactAPI(args string) string {
	arg := args
	if i := strings.IndexByte(arg, '/'); i >= 0 {
		arg = arg[i+1:]
	}
	user, host, _ := strings.Cut(arg, "@")
	var out []string
	for _, r := range s.lookup(user, host) {
		out = append(out, "sofia/"+s.opts.Profile+"/"+r.uri.String())
	}
	if len(out) == 0 {
		return "error/user_not_registered"
	}
	return strings.Join(out, ",")
}

// regStatus is the Status column: status, rpid, expiry (local time) and
// seconds left, in sofia's format.
func regStatus(r Registration, now time.Time, loc *time.Location, upper bool) string {
	exp, secs := "exp", "expsecs"
	if upper {
		exp, secs = "EXP", "EXPSECS"
	}
	left := int64(r.Expires.Sub(now).Round(time.Second) / time.Second)
	return "Registered(UDP)(unknown) " + exp + "(" + r.Expires.In(loc).Format("2006-01-02 15:04:05") + ") " +
		secs + "(" + strconv.FormatInt(left, 10) + ")"
}

// xmlEscape is switch_amp_encode.
var xmlEscape = strings.NewReplacer(`"`, "&quot;", "'", "&apos;", "&", "&amp;", "<", "&lt;", ">", "&gt;")

// renderXMLStatus is `sofia xmlstatus profile <p> reg` (show_reg_callback_xml),
// byte for byte as in esl_06_api_registered_api.txt. Ping-Time is 0.00:
// no OPTIONS pings are emulated.
func renderXMLStatus(regs []Registration, hostname string, now time.Time, loc *time.Location) string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<profile>\n  <registrations>\n")
	for _, r := range regs {
		b.WriteString("    <registration>\n")
		el := func(name, v string) {
			b.WriteString("        <" + name + ">" + xmlEscape.Replace(v) + "</" + name + ">\n")
		}
		el("call-id", r.CallID)
		el("user", r.User+"@"+r.Host)
		el("contact", r.Contact)
		el("agent", r.UserAgent)
		el("status", regStatus(r, now, loc, false))
		el("ping-status", r.PingStatus)
		el("ping-time", "0.00")
		el("host", hostname)
		el("network-ip", r.NetworkIP)
		el("network-port", strconv.Itoa(r.NetworkPort))
		el("sip-auth-user", r.User)
		el("sip-auth-realm", r.Host)
		el("mwi-account", r.User+"@"+r.Host)
		b.WriteString("    </registration>\n")
	}
	b.WriteString("  </registrations>\n</profile>\n")
	return b.String()
}

const statusLine = "=================================================================================================\n"

// renderStatus is `sofia status profile <p> reg` (show_reg_callback), as
// in esl_06_api_registered_api.txt.
func renderStatus(regs []Registration, hostname string, now time.Time, loc *time.Location) string {
	var b strings.Builder
	b.WriteString("\nRegistrations:\n" + statusLine)
	for _, r := range regs {
		for _, kv := range [][2]string{
			{"Call-ID:    ", r.CallID},
			{"User:       ", r.User + "@" + r.Host},
			{"Contact:    ", r.Contact},
			{"Agent:      ", r.UserAgent},
			{"Status:     ", regStatus(r, now, loc, true)},
			{"Ping-Status:", r.PingStatus},
			{"Ping-Time:", "0.00"},
			{"Host:       ", hostname},
			{"IP:         ", r.NetworkIP},
			{"Port:       ", strconv.Itoa(r.NetworkPort)},
			{"Auth-User:  ", r.User},
			{"Auth-Realm: ", r.Host},
			{"MWI-Account:", r.User + "@" + r.Host},
		} {
			b.WriteString(kv[0] + "\t" + kv[1] + "\n")
		}
		b.WriteString("\n")
	}
	b.WriteString("Total items returned: " + strconv.Itoa(len(regs)) + "\n" + statusLine)
	return b.String()
}
