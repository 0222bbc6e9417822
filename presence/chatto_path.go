package presence

import (
	"net/url"
	"strings"
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
