package presence

import "testing"

// A TCP or TLS contact without fs_path gets one, in FreeSWITCH's own form; UDP
// contacts and contacts FreeSWITCH gave an fs_path stay as stored.
func TestWithTransportPath(t *testing.T) {
	for in, want := range map[string]string{
		"sip:u@127.0.0.1:5070;transport=tcp": "sip:u@127.0.0.1:5070;transport=tcp;fs_path=sip%3Au%40127.0.0.1%3A5070%3Btransport%3Dtcp",
		"sip:u@h:5061;Transport=TLS;ob":      "sip:u@h:5061;Transport=TLS;ob;fs_path=sip%3Au%40h%3A5061%3BTransport%3DTLS%3Bob",
		"sip:u@h:5060":                       "sip:u@h:5060",
		"sip:u@h:5060;transport=udp":         "sip:u@h:5060;transport=udp",
		"sip:u@h:5060;transport=tcp;fs_nat=yes;fs_path=sip%3Au%4010.0.0.1%3A40000%3Btransport%3Dtcp": "sip:u@h:5060;transport=tcp;fs_nat=yes;fs_path=sip%3Au%4010.0.0.1%3A40000%3Btransport%3Dtcp",
	} {
		if got := withTransportPath(in); got != want {
			t.Errorf("withTransportPath(%q) = %q, want %q", in, got, want)
		}
	}
}
