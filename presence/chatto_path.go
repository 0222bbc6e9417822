package presence

import (
	"net/url"
	"strings"
	"time"
)

// withTransportPath gives a contact URI that names a transport other than UDP
// and has no fs_path an fs_path of that URI, so that FreeSWITCH's chat reaches it
// over that transport. Measured on FreeSWITCH 1.10.12 (TestRealFSDevices
// tcp_and_udp_devices): chat to the bare URI `sip:u@h:p;transport=tcp` goes out over
// UDP — the URI becomes a To header without brackets, whose ;transport is a header
// parameter — and fails, while the same URI with `;fs_path=<URL-encoded URI>` goes
// over TCP and is confirmed by the phone. FreeSWITCH writes fs_path itself only for
// NATed contacts, URL-encoded and without brackets (sofia_reg.c); this is that form.
func withTransportPath(uri string) string {
	if strings.Contains(strings.ToLower(uri), ";fs_path=") {
		return uri
	}
	transport := ""
	for _, p := range strings.Split(uri, ";")[1:] {
		if k, v, _ := strings.Cut(p, "="); strings.EqualFold(strings.TrimSpace(k), "transport") {
			transport = strings.ToLower(strings.TrimSpace(v))
		}
	}
	if transport == "" || transport == "udp" {
		return uri
	}
	return uri + ";fs_path=" + url.QueryEscape(uri)
}

// unregisteredEcho is how long after a named end of a registration a PRESENCE_IN
// Unregistered of the same AOR counts as its echo: FreeSWITCH fires both from one
// callback, so they come back to back.
const unregisteredEcho = 2 * time.Second

// endedSince reports whether a registration of st ended after t.
func (st *State) endedSince(t time.Time) bool {
	for i := range st.Ended {
		if st.Ended[i].EndedAt.After(t) {
			return true
		}
	}
	return false
}
