package handlers

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// locateForm is the form FreeSWITCH 1.10 posts for `xml_locate chatplan <tag> <attr>
// <value>` (mod_xml_curl basic_data, then the REQUEST_PARAMS event).
func locateForm(tag, attr, value string) []byte {
	return []byte("hostname=vm&section=chatplan&tag_name=" + tag + "&key_name=" + attr + "&key_value=" + value +
		"&Event-Name=REQUEST_PARAMS&Core-UUID=bdcc48b6-f5fb-4c75-ab1b-a0d810059303&Event-Sequence=9" +
		"&Event-Calling-File=mod_commands.c&Event-Calling-Function=xml_locate_function" +
		"&section=chatplan&tag=" + tag + "&tag_attr_name=" + attr + "&tag_attr_val=" + value)
}

func TestChatplanAnswersCheckFSProbe(t *testing.T) {
	ts := startServer(t, Config{Chatplan: ChatplanConfig{User: "fs", Password: "pw"}}, nil)
	req, _ := http.NewRequest(http.MethodPost, ts.url+ChatplanPath+"?body=", bytes.NewReader(locateForm("context", "name", ProbePrefix+"Ab12")))
	req.SetBasicAuth("fs", "pw")
	a := do(t, req)
	if a.status != http.StatusOK || len(a.doc.Sections) != 1 || a.doc.Sections[0].Name != "chatplan" ||
		len(a.doc.Sections[0].Contexts) != 1 || a.doc.Sections[0].Contexts[0].Name != ProbePrefix+"Ab12" {
		t.Fatalf("probe answer: %d\n%s", a.status, a.body)
	}
	if len(a.doc.Sections[0].Contexts[0].Actions) != 0 {
		t.Errorf("probe context has actions: %s", a.body)
	}
	// The probe goes through the same basic auth as messages.
	if a := post(t, ts.url, http.MethodPost, "body=", locateForm("context", "name", ProbePrefix+"Ab12")); a.status != http.StatusUnauthorized {
		t.Errorf("probe without credentials: %d", a.status)
	}
	for _, f := range [][]byte{
		locateForm("context", "name", "public"),                     // an ordinary xml_locate
		locateForm("context", "name", ProbePrefix+"bad%3C%22nonce"), // not a plain nonce
		locateForm("context", "name", ProbePrefix),                  // empty nonce
		locateForm("extension", "name", ProbePrefix+"Ab12"),         // another tag
		locateForm("context", "name", ProbePrefix+strings.Repeat("a", 65)),
	} {
		req, _ := http.NewRequest(http.MethodPost, ts.url+ChatplanPath+"?body=", bytes.NewReader(f))
		req.SetBasicAuth("fs", "pw")
		if a := do(t, req); a.status != http.StatusOK || !a.notFound() {
			t.Errorf("lookup %s: %d %s, want not found", f[:80], a.status, a.body)
		}
	}
	// None of these is taken for a malformed message.
	if l := ts.logs.String(); strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
		t.Errorf("logs: %s", l)
	}
}
