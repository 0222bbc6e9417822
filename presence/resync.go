package presence

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Resync replaces what presence knows about profile's registrations with FreeSWITCH's
// list: the body of `api sofia xmlstatus profile <profile> reg` (never `show
// registrations`, which keeps expired rows for minutes: docs/decisions.md §22). Call
// it on start and after every ESL reconnect, since events fired while disconnected are
// lost. Registrations of the profile that are not listed are dropped; listed ones are
// (re)added as registered. core is the Core-UUID of the FreeSWITCH that answered (""
// if unknown): when it differs from an AOR's mark, the mark restarts at that Core-UUID
// with sequence 0, as an event from it would.
//
// The list is parsed whole before anything changes, so garbled or hostile XML leaves
// the map as it was. Afterwards OnReachable is called for every deliverable AOR the
// resync covered: relay may have missed the event that made it so.
func (m *Map) Resync(ctx context.Context, profile, xmlstatus, core string) error {
	if profile == "" {
		return errors.New("presence: resync: no profile")
	}
	listed, err := parseXMLStatus(xmlstatus, profile, m.now())
	if err != nil {
		return fmt.Errorf("presence: resync %s: %w", profile, err)
	}
	// The AORs to visit: those listed, and those holding a registration of profile.
	visit := make(map[string]bool, len(listed))
	for aor := range listed {
		visit[aor] = true
	}
	m.mu.RLock()
	for aor, st := range m.aors {
		for _, r := range st.Registrations {
			if ofProfile(&r, profile) {
				visit[aor] = true
				break
			}
		}
	}
	m.mu.RUnlock()
	aors := make([]string, 0, len(visit))
	for aor := range visit {
		aors = append(aors, aor)
	}
	sort.Strings(aors)

	var errs []error
	m.wmu.Lock()
	sole := m.sole[profile]
	m.wmu.Unlock()
	for _, aor := range aors {
		regs := listed[aor]
		_, err := m.update(ctx, aor, func(st *State, _ bool, now time.Time) bool {
			resyncAOR(st, profile, regs, core, now)
			if sole {
				st.collapse(profile, now)
			}
			return true
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, aor := range aors {
		if m.Deliverable(aor) {
			m.notify(aor)
		}
	}
	return errors.Join(errs...)
}

// SetSoleProfiles tells Resync which profiles keep one registration per user
// (Event.Sole is the same for events): there, an AOR's registrations and
// remembered devices of the profile are one device.
func (m *Map) SetSoleProfiles(sole map[string]bool) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.sole = make(map[string]bool, len(sole))
	for p, s := range sole {
		m.sole[p] = s
	}
}

// ofProfile: a registration without a profile (none seen in practice) counts as
// belonging to every profile, so a resync can drop it.
func ofProfile(r *Registration, profile string) bool {
	return r.Profile == profile || r.Profile == ""
}

// resyncAOR sets st's registrations of profile to listed. What presence knew about a
// Call-ID it keeps where FreeSWITCH's list knows less: FreeSWITCH's ping status is
// only its own verdict (a phone answering 405 is "Unreachable" to it), so its
// Unreachable does not override presence's Reach, while its Reachable (a 200 or 486
// answer) is proof of life.
func resyncAOR(st *State, profile string, listed []Registration, core string, now time.Time) {
	if core != "" && core != st.LastCore {
		st.LastCore, st.LastSeq = core, 0
	}
	before := make(map[string]Registration, len(st.Registrations))
	var gone []Registration
	for i := len(st.Registrations) - 1; i >= 0; i-- {
		if r := st.Registrations[i]; ofProfile(&r, profile) {
			before[r.CallID] = r
			st.Registrations = slices.Delete(st.Registrations, i, i+1)
			gone = append(gone, r)
		}
	}
	changed := len(before) != len(listed)
	for _, r := range listed {
		r.Updated = now
		prev, ok := before[r.CallID]
		switch {
		case !ok:
			r.RegisteredAt = now
			r.Reach = reachFromPing(r.PingStatus)
			changed = true
		case r.Reach == Reachable:
			r.RegisteredAt = prev.RegisteredAt
			changed = changed || prev.Reach != Reachable
		default:
			r.RegisteredAt, r.Reach = prev.RegisteredAt, prev.Reach
		}
		if ok {
			r.Device, r.Instance, r.Revived = keyOf(&prev), prev.Instance, prev.Revived
			r.LastPing, r.PingRTT, r.PingMisses, r.LastAlive = prev.LastPing, prev.PingRTT, prev.PingMisses, prev.LastAlive
			st.Registrations = append(st.Registrations, r)
			delete(before, r.CallID)
		} else {
			st.register(r, now)
			// register's proof of life is a REGISTER's; a listed row is not one.
			last := &st.Registrations[len(st.Registrations)-1]
			last.RegisteredAt, last.LastAlive, last.Revived = now, time.Time{}, time.Time{}
		}
	}
	// What FreeSWITCH no longer lists ended while sipsilo was not looking.
	for _, r := range gone {
		if _, still := before[r.CallID]; still {
			st.Registrations = append(st.Registrations, r)
			st.end(len(st.Registrations)-1, now)
		}
	}
	if changed {
		st.Evidence, st.EvidenceAt = "resync", now
	}
}

// reachFromPing maps FreeSWITCH's ping-status for a registration presence did not
// know. Its "Unreachable" cannot tell a dead phone from one that answers 405
// (docs/decisions.md §6), so it becomes Suspect: deliverable, but flagged.
func reachFromPing(ping string) Reach {
	switch strings.ToLower(ping) {
	case "reachable":
		return Reachable
	case "unreachable":
		return Suspect
	}
	return Unknown
}

// The XML of `sofia xmlstatus profile <p> reg` (mod_sofia.c, show_reg_callback_xml),
// as in esl_06_api_registered_api.txt.
type xmlStatus struct {
	XMLName       xml.Name `xml:"profile"`
	Registrations *struct {
		List []xmlRegistration `xml:"registration"`
		// Anything else in <registrations> means this is not the document we know.
		Other []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"registrations"`
}

type xmlRegistration struct {
	CallID      string `xml:"call-id"`
	User        string `xml:"user"` // sip_user@sip_host: the AOR
	Contact     string `xml:"contact"`
	Agent       string `xml:"agent"`
	Status      string `xml:"status"` // "Registered(UDP)(unknown) exp(2026-11-26 03:52:55) expsecs(331)"
	PingStatus  string `xml:"ping-status"`
	NetworkIP   string `xml:"network-ip"`
	NetworkPort string `xml:"network-port"`
}

var (
	expSecsRE = regexp.MustCompile(`(?i)\bexpsecs\((-?\d+)\)`)
	expRE     = regexp.MustCompile(`(?i)\bexp\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\)`)
)

// parseXMLStatus returns the listed registrations by AOR. Anything unexpected is an
// error: an answer that is not this document (FreeSWITCH answers "Invalid Profile!"
// for an unknown profile) must not be read as "nobody is registered".
func parseXMLStatus(doc, profile string, now time.Time) (map[string][]Registration, error) {
	dec := xml.NewDecoder(strings.NewReader(doc))
	dec.CharsetReader = charsetReader
	var st xmlStatus
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("xmlstatus: %w", err)
	}
	if st.Registrations == nil {
		return nil, errors.New("xmlstatus: no <registrations> element")
	}
	if o := st.Registrations.Other; len(o) > 0 {
		return nil, fmt.Errorf("xmlstatus: unexpected <%s> in <registrations>", o[0].XMLName.Local)
	}
	// Decode stops at the end of <profile>; what follows must be nothing but space.
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xmlstatus: after </profile>: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) == 0 {
				continue
			}
		case xml.Comment, xml.ProcInst:
			continue
		}
		return nil, errors.New("xmlstatus: data after </profile>")
	}
	out := make(map[string][]Registration)
	for i, x := range st.Registrations.List {
		r, aor, err := x.registration(profile, now)
		if err != nil {
			return nil, fmt.Errorf("xmlstatus: registration %d: %w", i+1, err)
		}
		// A Call-ID listed twice for one AOR: the later row wins.
		regs := out[aor]
		if j := (&State{Registrations: regs}).find(r.CallID); j >= 0 {
			regs[j] = r
		} else {
			out[aor] = append(regs, r)
		}
	}
	return out, nil
}

func (x *xmlRegistration) registration(profile string, now time.Time) (Registration, string, error) {
	user := strings.TrimSpace(x.User)
	aor, err := checkAOR(user)
	if err != nil {
		return Registration{}, "", err
	}
	if u, h, ok := strings.Cut(aor, "@"); !ok || u == "" || h == "" {
		return Registration{}, "", fmt.Errorf("user %q is not user@host", aor)
	}
	callID := strings.TrimSpace(x.CallID)
	if callID == "" {
		return Registration{}, "", fmt.Errorf("%s: no call-id", aor)
	}
	expires, err := statusExpiry(x.Status, now)
	if err != nil {
		return Registration{}, "", fmt.Errorf("%s: %w", aor, err)
	}
	var port int
	if p := strings.TrimSpace(x.NetworkPort); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
			return Registration{}, "", fmt.Errorf("%s: network-port %q", aor, p)
		}
	}
	ping := strings.TrimSpace(x.PingStatus)
	return Registration{
		CallID: callID, Contact: x.Contact, NetworkIP: strings.TrimSpace(x.NetworkIP),
		NetworkPort: port, Expires: expires, Profile: profile, UserAgent: x.Agent,
		Reach: reachFromPing(ping), PingStatus: ping,
	}, aor, nil
}

// statusExpiry reads the expiry from the status text: expsecs(N), seconds from now
// (negative for a row past its expiry that the next tick will remove), else
// exp(YYYY-MM-DD hh:mm:ss) in FreeSWITCH's local time, taken as this host's. The last
// occurrence counts: FreeSWITCH appends them after the status and rpid, which come
// from the phone.
func statusExpiry(status string, now time.Time) (time.Time, error) {
	if m := expSecsRE.FindAllStringSubmatch(status, -1); m != nil {
		n, err := strconv.ParseInt(m[len(m)-1][1], 10, 64)
		if err != nil || n > int64(maxExpires/time.Second) || n < -int64(maxExpires/time.Second) {
			return time.Time{}, fmt.Errorf("expsecs in %q", status)
		}
		return now.Add(time.Duration(n) * time.Second), nil
	}
	if m := expRE.FindAllStringSubmatch(status, -1); m != nil {
		t, err := time.ParseInLocation(time.DateTime, m[len(m)-1][1], time.Local)
		if err != nil {
			return time.Time{}, fmt.Errorf("exp in %q: %w", status, err)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("no expiry in status %q", status)
}

// charsetReader lets encoding/xml read the document FreeSWITCH declares as
// ISO-8859-1. FreeSWITCH does not convert anything: it writes the bytes it holds, and
// those are the same bytes its JSON events carry (UTF-8 in practice). So a document
// that is valid UTF-8 is taken as it is, which keeps an AOR from the list equal to the
// same AOR from an event; only bytes that are not UTF-8 are read as Latin-1, where
// each byte is the code point of the same value.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii":
	default:
		return nil, fmt.Errorf("unsupported charset %q", label)
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return nil, err
	}
	if utf8.Valid(b) {
		return bytes.NewReader(b), nil
	}
	out := make([]byte, 0, len(b)+len(b)/8)
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return bytes.NewReader(out), nil
}
