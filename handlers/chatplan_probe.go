package handlers

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/dialplan"
)

// ProbePrefix starts the context name `sipsilo check-fs` looks up with
// `api xml_locate chatplan context name <ProbePrefix><nonce>`: FreeSWITCH asks its
// chatplan binding, and only sipsilo answers with that context, so seeing the nonce
// come back proves the whole path (binding, URL, credentials, sipsilo).
const ProbePrefix = "sipsilo-check-"

// lookup answers a chatplan request that is not a message: a message lookup
// (mod_sms's chatplan_hunt) leaves tag_name empty, xml_locate fills it in. Nothing
// is stored; anything but a well-formed probe is "not found", so FreeSWITCH answers
// from its static chatplan.
func (h *chatplan) lookup(c echo.Context, l *dialplan.Lookup) (answer, why string, err error) {
	nonce, ok := strings.CutPrefix(l.KeyValue, ProbePrefix)
	if l.TagName != "context" || l.KeyName != "name" || !ok || !probeNonce(nonce) {
		return AnswerNotFound, WhyNotMessage, notFound(c, http.StatusOK)
	}
	h.log.Debug("check-fs probe answered")
	return AnswerProbe, WhyCheckFS, c.Blob(http.StatusOK, "text/xml", []byte(`<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<document type="freeswitch/xml">
  <section name="chatplan" description="sipsilo check-fs probe">
    <context name="`+ProbePrefix+nonce+`"/>
  </section>
</document>
`))
}

// probeNonce accepts 1 to 64 letters and digits: safe verbatim in XML and in
// FreeSWITCH's preprocessor.
func probeNonce(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
