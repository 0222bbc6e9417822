package fsemu

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Registration is one row of sofia's sip_registrations table.
type Registration struct {
	User, Host  string // AOR user and (forced) domain
	CallID      string
	Contact     string // as sofia stores it: `"" <sip:1000@127.0.0.1:25070>`
	NetworkIP   string // where the REGISTER came from
	NetworkPort int
	Expires     time.Time // REGISTER time + expires + sip-expires-late-margin (60 s)
	UserAgent   string
	PingStatus  string // "Reachable" (no OPTIONS pings are emulated)
}

// registration is a Registration plus what the events need.
type registration struct {
	Registration
	uri      sip.Uri // the contact URI, where MESSAGEs go
	exptime  int     // the expires the UA asked for, in seconds
	authUser string
}

// dest is where MESSAGEs to this registration go: the registered contact's
// host and port (5060 when it has none). sofia sends to the contact URI
// unless it detected NAT, which it does not for a 127.0.0.1 contact
// registered from 127.0.0.1 (no aggressive-nat-detection, nat.auto ACL), so
// a third-party registration (UAOptions.Contact) is delivered to that
// contact, not to the address the REGISTER came from. Without a contact
// URI (the sender of an inbound MESSAGE) it is the source address.
func (r *registration) dest() string {
	if r.uri.Host == "" {
		return net.JoinHostPort(r.NetworkIP, strconv.Itoa(r.NetworkPort))
	}
	port := r.uri.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(r.uri.Host, strconv.Itoa(port))
}

// lateMargin is sofia's sip-expires-late-margin default: the stored expiry
// is 60 s after the one granted (esl_06: Expires 300 gives EXPSECS(331)
// 29 s later).
const lateMargin = 60 * time.Second

// Registrations returns the current sofia registrations, oldest first.
func (s *Switch) Registrations() []Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Registration, len(s.regs))
	for i, r := range s.regs {
		out[i] = r.Registration
	}
	return out
}

// lookup returns copies of the registrations of user@host.
func (s *Switch) lookup(user, host string) []registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []registration
	for _, r := range s.regs {
		if r.User == user && (host == "" || strings.EqualFold(r.Host, host)) {
			out = append(out, *r)
		}
	}
	return out
}

// handleRegister is sofia_reg_handle_register_token for the captured
// profile: digest challenge (401), then pre_register, the row, 200 OK and
// sofia::register; with Expires 0 pre_register, 200, PRESENCE_IN and
// sofia::unregister (esl_01, esl_07).
func (s *Switch) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	authUser, res := s.checkAuth(req, "Authorization")
	switch res {
	case authMissing, authStale:
		s.respond(req, tx, 401, "Unauthorized", sip.NewHeader("WWW-Authenticate", s.challenge()))
		return
	case authForbidden:
		s.respond(req, tx, 403, "Forbidden")
		return
	}
	to := req.To()
	from := req.From()
	if to == nil || from == nil {
		s.respond(req, tx, 400, "Bad Request")
		return
	}
	// inbound-reg-force-matching-username=true
	if authUser != to.Address.User {
		s.respond(req, tx, 403, "Forbidden")
		return
	}
	exptime := 3600
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			exptime = n
		}
	}
	c := req.Contact()
	if c != nil {
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				exptime = n
			}
		}
	}
	ip, port := splitSource(req.Source())
	r := &registration{exptime: exptime, authUser: authUser}
	r.User, r.Host = to.Address.User, s.opts.Domain // force-register-domain
	r.CallID = req.CallID().Value()
	r.NetworkIP, r.NetworkPort = ip, port
	if h := req.GetHeader("User-Agent"); h != nil {
		r.UserAgent = h.Value()
	}
	r.PingStatus = "Reachable"
	if c != nil {
		r.uri = *c.Address.Clone()
		r.uri.UriParams, r.uri.Headers = nil, nil
		r.Contact = `"` + c.DisplayName + `" <` + c.Address.String() + `>`
	}
	if exptime == 0 {
		s.unregister(req, tx, r)
		return
	}
	r.Expires = time.Now().Add(time.Duration(exptime)*time.Second + lateMargin)
	s.esl.Fire(s.preRegister(r, from.Address.User, from.Address.Host, to.Address.User, to.Address.Host, true))
	s.mu.Lock()
	kept := s.regs[:0]
	for _, o := range s.regs {
		if !s.replaces(r, o) {
			kept = append(kept, o)
		}
	}
	s.regs = append(kept, r)
	s.mu.Unlock()
	// sofia::register goes out before the 200 OK here, so that a test that
	// waited for Register sees it; sofia's own order is not observable in
	// the recordings (both within 20 ms).
	defer s.respond(req, tx, 200, "OK",
		sip.NewHeader("Contact", "<"+r.uri.String()+">;expires="+strconv.Itoa(exptime)),
		sip.NewHeader("Date", time.Now().UTC().Format(time.RFC1123)))
	s.esl.Fire(s.custom("sofia::register", append([]Header{
		{"profile-name", s.opts.Profile},
		{"from-user", from.Address.User},
		{"from-host", from.Address.Host},
		{"presence-hosts", s.opts.Domain},
		{"contact", r.Contact},
		{"call-id", r.CallID},
		{"rpid", "unknown"},
		{"status", "Registered(UDP)"},
		{"expires", strconv.Itoa(exptime)},
		{"to-user", to.Address.User},
		{"to-host", to.Address.Host},
		{"network-ip", r.NetworkIP},
		{"network-port", strconv.Itoa(r.NetworkPort)},
		{"username", r.authUser},
		{"realm", s.opts.Domain},
		{"user-agent", r.UserAgent},
	}, s.directoryVars(r.User)...)...))
}

// replaces reports whether the REGISTER of r deletes the row o: by Call-ID, or
// with multiple-registrations=contact by contact (the user's row with the same
// contact, then any row with that contact: sofia_reg.c's two deletes). The
// delete-and-insert moves a refreshed row to the end of the table, so it is
// sent to last by a fan-out chat.
func (s *Switch) replaces(r, o *registration) bool {
	if s.opts.MultipleRegistrations == "contact" {
		return o.Contact == r.Contact
	}
	return o.CallID == r.CallID && o.User == r.User
}

// directoryVars are the user's directory variables sofia appends to
// register/unregister (the vanilla directory's, as captured).
func (s *Switch) directoryVars(user string) []Header {
	return []Header{
		{"sip_number_alias", user},
		{"sip_auth_username", user},
		{"sip_auth_realm", s.opts.Domain},
		{"number_alias", user},
		{"user_name", user},
		{"domain_name", s.opts.Domain},
		{"user_context", "default"},
	}
}

// preRegister is the sofia::pre_register event (sofia_reg.c line 1810).
// For a REGISTER it has contact, status Registered(UDP) and expires; for an
// authenticated MESSAGE (finding 10) none of contact/expires and status
// "Registered".
func (s *Switch) preRegister(r *registration, fromUser, fromHost, toUser, toHost string, register bool) *Event {
	hs := []Header{{"profile-name", s.opts.Profile}, {"from-user", fromUser}, {"from-host", fromHost}}
	if register {
		hs = append(hs, Header{"contact", r.Contact})
	}
	hs = append(hs, Header{"call-id", r.CallID}, Header{"rpid", "unknown"})
	if register {
		hs = append(hs, Header{"status", "Registered(UDP)"}, Header{"expires", strconv.Itoa(r.exptime)})
	} else {
		hs = append(hs, Header{"status", "Registered"})
	}
	hs = append(hs,
		Header{"to-user", toUser}, Header{"to-host", toHost},
		Header{"network-ip", r.NetworkIP}, Header{"network-port", strconv.Itoa(r.NetworkPort)},
		Header{"user-agent", r.UserAgent})
	return s.custom("sofia::pre_register", hs...)
}

// unregister is the Expires: 0 branch of sofia_reg_handle_register_token
// (esl_07): pre_register with expires 0, the row deleted, 200 OK,
// PRESENCE_IN Unregistered (line 2103), then sofia::unregister (line 2213).
func (s *Switch) unregister(req *sip.Request, tx sip.ServerTransaction, r *registration) {
	from, to := req.From(), req.To()
	s.esl.Fire(s.preRegister(r, from.Address.User, from.Address.Host, to.Address.User, to.Address.Host, true))
	s.mu.Lock()
	userRows := 0
	kept := s.regs[:0]
	for _, o := range s.regs {
		if o.User == r.User {
			userRows++
			if s.replaces(r, o) || req.Contact() == nil {
				continue
			}
		}
		kept = append(kept, o)
	}
	s.regs = kept
	s.mu.Unlock()
	s.respond(req, tx, 200, "OK", sip.NewHeader("Date", time.Now().UTC().Format(time.RFC1123)))
	// With multiple registrations sofia counts the user's rows before deleting
	// and stays silent when there were any.
	if s.opts.MultipleRegistrations != "contact" || userRows == 0 {
		s.unregisteredPresence(r)
	}
	s.esl.Fire(s.custom("sofia::unregister", append([]Header{
		{"profile-name", s.opts.Profile},
		{"username", r.authUser},
		{"from-user", from.Address.User},
		{"from-host", from.Address.Host},
		{"contact", r.Contact},
		{"call-id", r.CallID},
		{"rpid", "unknown"},
		{"realm", s.opts.Domain},
		{"network-ip", r.NetworkIP},
		{"network-port", strconv.Itoa(r.NetworkPort)},
		{"user-agent", r.UserAgent},
		{"expires", "0"},
	}, s.directoryVars(r.User)...)...))
}

// unregisteredPresence is the PRESENCE_IN Unregistered of an un-REGISTER
// (sofia_reg.c line 2103).
// unregisteredPresence is an un-REGISTER's PRESENCE_IN Unregistered
// (sofia_reg.c line 2103).
func (s *Switch) unregisteredPresence(r *registration) {
	s.esl.Fire(s.newEvent("PRESENCE_IN", "", callingInfo["PRESENCE_IN"],
		Header{"proto", "sip"},
		Header{"rpid", "unknown"},
		Header{"login", s.login()},
		Header{"user-agent", r.UserAgent},
		Header{"from", r.User + "@" + r.Host},
		Header{"status", "Unregistered"},
		Header{"presence-source", "register"},
		Header{"event_type", "presence"}))
}

// login is the profile URL sofia puts in presence and MESSAGE events.
func (s *Switch) login() string { return "sip:mod_sofia@" + s.SIPAddr() }

// expire removes the registrations match selects, firing for each what
// sofia_reg_del_callback fires: sofia::expire (expires = the stored epoch,
// line 726) and PRESENCE_IN Unregistered (line 741, with the quirky
// rpid=away and user-agent=Registered(UDP)). No sofia::unregister.
func (s *Switch) expire(match func(*registration) bool) int {
	s.mu.Lock()
	var gone []*registration
	kept := s.regs[:0]
	for _, r := range s.regs {
		if match(r) {
			gone = append(gone, r)
			continue
		}
		kept = append(kept, r)
	}
	s.regs = kept
	s.mu.Unlock()
	for _, r := range gone {
		s.esl.Fire(s.custom("sofia::expire",
			Header{"profile-name", s.opts.Profile},
			Header{"call-id", r.CallID},
			Header{"user", r.User},
			Header{"username", r.authUser},
			Header{"host", r.Host},
			Header{"contact", r.Contact},
			Header{"expires", strconv.FormatInt(r.Expires.Unix(), 10)},
			Header{"user-agent", r.UserAgent},
			Header{"realm", s.opts.Domain},
			Header{"network-ip", r.NetworkIP},
			Header{"network-port", strconv.Itoa(r.NetworkPort)}))
		s.esl.Fire(s.newEvent("PRESENCE_IN", "", [3]string{"sofia_reg.c", "sofia_reg_del_callback", "741"},
			Header{"proto", "sip"},
			Header{"rpid", "away"},
			Header{"login", s.login()},
			Header{"user-agent", "Registered(UDP)"},
			Header{"from", r.User + "@" + r.Host},
			Header{"status", "Unregistered"},
			Header{"event_type", "presence"}))
	}
	return len(gone)
}

// regThread is sofia_reg_check_expire run every
// registration-thread-frequency: rows whose expiry has passed go.
func (s *Switch) regThread() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.RegCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.expire(func(r *registration) bool { return !r.Expires.After(now) })
		}
	}
}

// splitSource splits a packet source "ip:port".
func splitSource(src string) (string, int) {
	i := strings.LastIndexByte(src, ':')
	if i < 0 {
		return src, 0
	}
	p, _ := strconv.Atoi(src[i+1:])
	return src[:i], p
}
