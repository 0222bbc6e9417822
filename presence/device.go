package presence

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"slices"
	"sort"
	"strings"
	"time"
)

// Devices (docs/decisions.md §28): a device is one registration of an AOR, known
// by a key that stays the same across its re-registrations, and remembered for
// Config.DeviceMemory after its registration ended.

// maxDeviceKey bounds a device key; longer ones end in a hash of the whole.
const maxDeviceKey = 256

// maxEnded bounds the ended devices remembered per AOR: a phone that registers
// with a new contact every time must not grow its AOR's record without end. The
// most recently ended are kept.
const maxEnded = 32

// Device is one device of an AOR: a live registration, or one that ended within
// the device memory.
type Device struct {
	Key, AOR, Contact, Profile, UserAgent string
	Registered                            bool // its registration has not ended or expired
	Deliverable                           bool // registered and not Unreachable
	Reach                                 Reach
	RegisteredAt, LastAlive, EndedAt      time.Time
}

// DeviceKey is the key of the device a registration with this +sip.instance and
// contact is: "instance:<instance>" when the phone sent one, else "contact:" and
// the contact URI reduced to scheme, user, host, port and transport (lower-cased
// scheme, host and transport; every other parameter dropped, so FreeSWITCH's fs_*,
// ob, rinstance and line do not split one phone in two). callID stands in for a
// registration without a contact.
func DeviceKey(instance, contact, callID string) string {
	if instance = strings.TrimSpace(instance); instance != "" {
		return boundKey("instance:" + instance)
	}
	if u := reduceContact(contact); u != "" {
		return boundKey("contact:" + u)
	}
	return boundKey("call-id:" + callID)
}

func boundKey(k string) string {
	if len(k) <= maxDeviceKey {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return k[:maxDeviceKey-33] + "#" + hex.EncodeToString(sum[:16])
}

// bareContact takes the URI out of a Contact header value (`"name" <sip:…;p>;q=…`
// or a bare `sip:…`), keeping the URI's own parameters.
func bareContact(contact string) string {
	c := strings.TrimSpace(contact)
	if i := strings.IndexByte(c, '<'); i >= 0 {
		j := strings.IndexByte(c[i:], '>')
		if j < 0 {
			return ""
		}
		return strings.TrimSpace(c[i+1 : i+j])
	}
	return c
}

// reduceContact is DeviceKey's reduction of a contact URI; "" when there is none.
func reduceContact(contact string) string {
	c := bareContact(contact)
	scheme, rest, ok := strings.Cut(c, ":")
	if !ok || scheme == "" || rest == "" {
		return ""
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	user, hostPart := "", rest
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, hostPart = rest[:at], rest[at+1:]
		if i := strings.IndexByte(user, ';'); i >= 0 {
			user = user[:i]
		}
	}
	hostport, params, _ := strings.Cut(hostPart, ";")
	out := strings.ToLower(scheme) + ":"
	if user != "" {
		out += user + "@"
	}
	out += strings.ToLower(hostport)
	for p := range strings.SplitSeq(params, ";") {
		if k, v, _ := strings.Cut(p, "="); strings.EqualFold(strings.TrimSpace(k), "transport") {
			out += ";transport=" + strings.ToLower(strings.TrimSpace(v))
			break
		}
	}
	return out
}

// keyOf is r's device key, computed when r predates device keys.
func keyOf(r *Registration) string {
	if r.Device != "" {
		return r.Device
	}
	return DeviceKey(r.Instance, r.Contact, r.CallID)
}

// register installs r (a REGISTER's registration) and gives it its device key:
// the key of the registration with the same Call-ID, else its own; a live
// registration of the same device under another Call-ID is replaced (the PBX
// replaced it: a new Call-ID from the same contact); a remembered device with the
// key comes back. A key new for the AOR inherits the key of the most recently
// ended device with the same non-empty User-Agent on the same contact host
// (succession: the phone restarted on a new port, the app was reinstalled). The
// host keeps two phones of one user with the same app apart: a wrong succession
// would hand one device's messages to the other for good. Live devices never
// merge (docs/decisions.md §28).
func (st *State) register(r Registration, now time.Time) {
	key := DeviceKey(r.Instance, r.Contact, r.CallID)
	preset := r.Device != "" // soleOf's: the device this REGISTER replaced
	if preset {
		key = r.Device
	}
	if i := st.find(r.CallID); i >= 0 {
		old := st.Registrations[i]
		key = keyOf(&old)
		switch {
		case old.Reach == Unreachable:
			r.Revived = now
		case !old.Revived.IsZero() && now.Sub(old.Revived) < staleVerdictWindow:
			r.Revived = old.Revived
		}
		st.Registrations = slices.Delete(st.Registrations, i, i+1)
	} else if j := slices.IndexFunc(st.Ended, func(e Registration) bool { return e.CallID == r.CallID }); j >= 0 {
		r.Revived = now
		key = keyOf(&st.Ended[j])
	}
	known := slices.ContainsFunc(st.Registrations, func(x Registration) bool { return keyOf(&x) == key }) ||
		slices.ContainsFunc(st.Ended, func(e Registration) bool { return e.Device == key })
	if !known && !preset {
		key = st.successor(&r, key)
	}
	st.Registrations = slices.DeleteFunc(st.Registrations, func(x Registration) bool { return keyOf(&x) == key })
	st.Ended = slices.DeleteFunc(st.Ended, func(e Registration) bool { return e.Device == key })
	r.Device = key
	st.Registrations = append(st.Registrations, r)
}

// soleOf applies a REGISTER in a profile that keeps one registration per user:
// the AOR's other registrations and remembered devices of r's profile are the
// same device, replaced by r. r takes over the key of the most recent of them,
// and they are dropped without being remembered as devices of their own, so a
// single-device user stays one device when the phone changes its contact.
func (st *State) soleOf(r *Registration) {
	ofProfile := func(x *Registration) bool { return x.Profile == r.Profile && x.CallID != r.CallID }
	var key string
	var at time.Time
	for i := range st.Registrations {
		if x := &st.Registrations[i]; ofProfile(x) && (key == "" || x.RegisteredAt.After(at)) {
			key, at = keyOf(x), x.RegisteredAt
		}
	}
	if key == "" {
		for i := range st.Ended {
			if e := &st.Ended[i]; ofProfile(e) && (key == "" || e.EndedAt.After(at)) {
				key, at = keyOf(e), e.EndedAt
			}
		}
	}
	if key == "" {
		return
	}
	st.Registrations = slices.DeleteFunc(st.Registrations, func(x Registration) bool { return ofProfile(&x) })
	st.Ended = slices.DeleteFunc(st.Ended, func(e Registration) bool { return ofProfile(&e) })
	if st.find(r.CallID) < 0 {
		r.Device = key
	}
}

// collapse makes st's registrations and remembered devices of profile, a profile
// that keeps one registration per user, one device (after a resync, which may
// have found the phone under a new contact). The key is that of a live
// registration registered before now (what messages target), else of the most
// recently ended device, else of the latest registration. With a live
// registration nothing of the profile stays remembered; without, the most
// recently ended device does.
func (st *State) collapse(profile string, now time.Time) {
	of := func(x *Registration) bool { return x.Profile == profile }
	var live []int
	for i := range st.Registrations {
		if of(&st.Registrations[i]) {
			live = append(live, i)
		}
	}
	var ended []int
	for i := range st.Ended {
		if of(&st.Ended[i]) {
			ended = append(ended, i)
		}
	}
	if len(live)+len(ended) <= 1 {
		return
	}
	key := ""
	var at time.Time
	pick := func(k string, t time.Time) {
		if key == "" || t.After(at) {
			key, at = k, t
		}
	}
	for _, i := range live {
		if r := &st.Registrations[i]; r.RegisteredAt.Before(now) {
			pick(keyOf(r), r.RegisteredAt)
		}
	}
	if key == "" {
		for _, i := range ended {
			pick(keyOf(&st.Ended[i]), st.Ended[i].EndedAt)
		}
	}
	if key == "" {
		for _, i := range live {
			pick(keyOf(&st.Registrations[i]), st.Registrations[i].RegisteredAt)
		}
	}
	for _, i := range live {
		st.Registrations[i].Device = key
	}
	if len(live) > 0 {
		st.Ended = slices.DeleteFunc(st.Ended, func(e Registration) bool { return of(&e) })
		return
	}
	keep := st.Ended[ended[0]]
	for _, i := range ended {
		if st.Ended[i].EndedAt.After(keep.EndedAt) {
			keep = st.Ended[i]
		}
	}
	keep.Device = key
	st.Ended = append(slices.DeleteFunc(st.Ended, func(e Registration) bool { return of(&e) }), keep)
}

// successor is the key r inherits as a successor (see register), else key.
func (st *State) successor(r *Registration, key string) string {
	host := contactHost(r.Contact)
	if r.UserAgent == "" || host == "" {
		return key
	}
	same := func(x *Registration) bool { return x.UserAgent == r.UserAgent && contactHost(x.Contact) == host }
	best := -1
	for j := range st.Ended {
		if e := &st.Ended[j]; same(e) && (best < 0 || e.EndedAt.After(st.Ended[best].EndedAt)) {
			best = j
		}
	}
	if best >= 0 {
		return st.Ended[best].Device
	}
	return key
}

// contactHost is the lower-cased host of a contact URI, without its port; "" when
// there is none.
func contactHost(contact string) string {
	u := reduceContact(contact)
	_, rest, _ := strings.Cut(u, ":")
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	rest, _, _ = strings.Cut(rest, ";")
	if h, _, err := net.SplitHostPort(rest); err == nil {
		return h
	}
	return strings.Trim(rest, "[]")
}

// end removes registration i and remembers its device as ended: at now, or at its
// expiry when that came first.
func (st *State) end(i int, now time.Time) {
	r := st.Registrations[i]
	st.Registrations = slices.Delete(st.Registrations, i, i+1)
	r.Device = keyOf(&r)
	if slices.ContainsFunc(st.Registrations, func(x Registration) bool { return keyOf(&x) == r.Device }) {
		return // the device is still registered under another Call-ID
	}
	r.EndedAt = now
	if !r.Expires.IsZero() && r.Expires.Before(now) {
		r.EndedAt = r.Expires
	}
	st.Ended = slices.DeleteFunc(st.Ended, func(e Registration) bool { return e.Device == r.Device })
	st.Ended = append(st.Ended, r)
}

// endAll ends every registration.
func (st *State) endAll(now time.Time) {
	for len(st.Registrations) > 0 {
		st.end(len(st.Registrations)-1, now)
	}
}

// forget drops the devices that ended before cutoff, and the oldest beyond maxEnded.
func (st *State) forget(cutoff time.Time) {
	st.Ended = slices.DeleteFunc(st.Ended, func(e Registration) bool { return e.EndedAt.Before(cutoff) })
	if len(st.Ended) > maxEnded {
		sort.SliceStable(st.Ended, func(i, j int) bool { return st.Ended[i].EndedAt.After(st.Ended[j].EndedAt) })
		st.Ended = st.Ended[:maxEnded]
	}
	if len(st.Ended) == 0 {
		st.Ended = nil
	}
}

// liveDevices lists the keys of the devices with a live registration.
func (st *State) liveDevices(now time.Time) []string {
	var out []string
	for i := range st.Registrations {
		r := &st.Registrations[i]
		if k := keyOf(r); r.Expires.After(now) && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// newlyDeliverable reports whether st has a deliverable device that was not
// deliverable in before (nil: the AOR was unknown). It allocates nothing: it runs
// on every change, every answered ping among them.
func (st *State) newlyDeliverable(before *State, now time.Time) bool {
	for i := range st.Registrations {
		r := &st.Registrations[i]
		if !r.Expires.After(now) || r.Reach == Unreachable {
			continue
		}
		if before == nil || !before.deviceDeliverable(keyOf(r), now) {
			return true
		}
	}
	return false
}

// deviceDeliverable: the device key has a live registration that is not unreachable.
func (st *State) deviceDeliverable(key string, now time.Time) bool {
	for i := range st.Registrations {
		r := &st.Registrations[i]
		if r.Expires.After(now) && r.Reach != Unreachable && keyOf(r) == key {
			return true
		}
	}
	return false
}

// devices lists st's devices at now: live registrations, then registrations past
// their expiry and ended ones that ended at or after cutoff; one per key, sorted.
func (st *State) devices(now, cutoff time.Time) []Device {
	byKey := make(map[string]Device, len(st.Registrations)+len(st.Ended))
	add := func(r *Registration, ended time.Time) {
		d := Device{Key: keyOf(r), AOR: st.AOR, Contact: r.Contact, Profile: r.Profile, UserAgent: r.UserAgent,
			Registered: ended.IsZero(), Reach: r.Reach, RegisteredAt: r.RegisteredAt, LastAlive: r.LastAlive,
			EndedAt: ended}
		d.Deliverable = d.Registered && r.Reach != Unreachable
		if !d.Registered && d.EndedAt.Before(cutoff) {
			return
		}
		prev, ok := byKey[d.Key]
		if ok && (prev.Deliverable && !d.Deliverable || prev.Registered && !d.Registered) {
			return
		}
		byKey[d.Key] = d
	}
	for i := range st.Registrations {
		r := &st.Registrations[i]
		var ended time.Time
		if !r.Expires.After(now) {
			ended = r.Expires
		}
		add(r, ended)
	}
	for i := range st.Ended {
		add(&st.Ended[i], st.Ended[i].EndedAt)
	}
	out := make([]Device, 0, len(byKey))
	for _, d := range byKey {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Devices lists aor's devices: those registered and those remembered (ended within
// Config.DeviceMemory), sorted by key.
func (m *Map) Devices(aor string) []Device {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.aors[aor]
	if !ok {
		return nil
	}
	return st.devices(now, now.Add(-m.memory))
}

// Targets lists the keys of the devices a message to aor received now must reach:
// those registered now and those whose registration ended within
// Config.DeviceMemory; sorted. A device first seen later is not among them.
func (m *Map) Targets(aor string) []string {
	now := m.now()
	cutoff := now.Add(-m.memory)
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.aors[aor]
	if !ok {
		return nil
	}
	// Devices' rule without building them: it runs for every message received.
	out := make([]string, 0, len(st.Registrations)+len(st.Ended))
	add := func(k string) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for i := range st.Registrations {
		if r := &st.Registrations[i]; r.Expires.After(now) || !r.Expires.Before(cutoff) {
			add(keyOf(r))
		}
	}
	for i := range st.Ended {
		if e := &st.Ended[i]; !e.EndedAt.Before(cutoff) {
			add(keyOf(e))
		}
	}
	slices.Sort(out)
	return out
}

// DeviceDeliverable reports whether the device key of aor has a live registration
// that is not known to be unreachable.
func (m *Map) DeviceDeliverable(aor, key string) bool {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.aors[aor]
	return ok && st.deviceDeliverable(key, now)
}

// maxChatTo bounds a chat destination: it travels in one bgapi line.
const maxChatTo = 2048

// ChatTo is the FreeSWITCH chat destination that reaches only the device key of
// aor: "<profile>/<contact URI>", the URI as FreeSWITCH stored it, with its fs_nat
// and fs_path parameters (a TCP contact needs fs_path). ok is false when the device
// has no live registration, no profile, or a contact that cannot travel in a chat
// command (chat's arguments are separated by '|').
func (m *Map) ChatTo(aor, key string) (to string, ok bool) {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, found := m.aors[aor]
	if !found {
		return "", false
	}
	var best *Registration
	for i := range st.Registrations {
		r := &st.Registrations[i]
		if keyOf(r) == key && r.Expires.After(now) && r.Profile != "" &&
			(best == nil || r.RegisteredAt.After(best.RegisteredAt)) {
			best = r
		}
	}
	if best == nil {
		return "", false
	}
	uri := withTransportPath(bareContact(best.Contact))
	to = best.Profile + "/" + uri
	if uri == "" || !strings.Contains(uri, ":") || len(to) > maxChatTo || !chatSafe(to) {
		return "", false
	}
	return to, true
}

// chatSafe refuses the '|' that separates chat's arguments, the quote and
// backslash its argument splitter interprets, and anything that could end the
// command line.
func chatSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '|' || c == '<' || c == '>' || c == '"' || c == '\'' || c == '\\' {
			return false
		}
	}
	return true
}

// deviceLastAlive is LastAlive for one device of aor.
func (m *Map) deviceLastAlive(aor, key string) time.Time {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	st, ok := m.aors[aor]
	if !ok {
		return time.Time{}
	}
	var last time.Time
	for _, r := range st.Registrations {
		if keyOf(&r) == key && r.Expires.After(now) && r.LastAlive.After(last) {
			last = r.LastAlive
		}
	}
	return last
}
