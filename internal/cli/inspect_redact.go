package cli

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// redactor hides what identifies people in inspect's output: message bodies become
// their length and a hash, the user part of every address (usually a phone number)
// a token, and the domain stays so that routing problems remain visible. The hash is
// keyed (HMAC-SHA256): a plain hash of a phone number is reversed by trying them all.
// One key per run keeps tokens consistent within an output; --redact-key makes them
// comparable across runs.
type redactor struct{ key []byte }

func (r *redactor) hash(b []byte) string {
	m := hmac.New(sha256.New, r.key)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// token stands for a user part or any other identifying string.
func (r *redactor) token(s string) string {
	if s == "" {
		return ""
	}
	return "u-" + r.hash([]byte(s))[:10]
}

// aor redacts user@domain to token@domain.
func (r *redactor) aor(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return r.token(a[:i]) + a[i:]
	}
	return r.token(a)
}

// userAt finds the user part before an @ in free text and URIs (sip:user@host,
// "user@host"); the scheme's colon and brackets end it.
var userAt = regexp.MustCompile(`[^\s@<>:;"'(),\[\]{}|\\/=]+@`)

// text redacts every user@ in s and every known user part (the message's own
// sender and recipient), which results and reasons may quote without an @.
func (r *redactor) text(s string, known ...string) string {
	s = userAt.ReplaceAllStringFunc(s, func(m string) string { return r.token(m[:len(m)-1]) + "@" })
	for _, k := range known {
		if u := userOf(k); len(u) >= 3 {
			s = strings.ReplaceAll(s, u, r.token(u))
		}
	}
	return s
}

// nameAddr redacts a From or Contact header value: the display name goes, the
// URI's user part becomes a token, parameters stay.
func (r *redactor) nameAddr(s string, known ...string) string {
	if i := strings.IndexByte(s, '<'); i > 0 && strings.TrimSpace(s[:i]) != "" {
		s = s[i:]
	}
	return r.text(s, known...)
}

func userOf(aor string) string {
	if i := strings.LastIndexByte(aor, '@'); i >= 0 {
		return aor[:i]
	}
	return aor
}

// message redacts v in place.
func (r *redactor) message(v *kv.MessageView) {
	known := []string{v.From, v.To}
	if v.Body != nil || v.BodyBase64 != nil {
		v.BodyHash = r.hash(v.BodyBytes())
	}
	v.Body, v.BodyBase64 = nil, nil
	v.From, v.To = r.aor(v.From), r.aor(v.To)
	v.FromFull = r.nameAddr(v.FromFull, known...)
	v.Reason = r.text(v.Reason, known...)
	v.LastResult = r.text(v.LastResult, known...)
	for i := range v.History {
		v.History[i].Detail = r.text(v.History[i].Detail, known...)
	}
}

// presence redacts v in place. Call-IDs are tokens too: phones often build them
// from their own address.
func (r *redactor) presence(v *presence.View) {
	known := v.AOR
	v.AOR = r.aor(v.AOR)
	v.Evidence = r.text(v.Evidence, known)
	for i := range v.Registrations {
		g := &v.Registrations[i]
		g.CallID = r.token(g.CallID)
		g.Contact = r.nameAddr(g.Contact, known)
		g.PingStatus = r.text(g.PingStatus, known)
	}
	for i := range v.Devices {
		d := &v.Devices[i]
		d.Key = r.token(d.Key)
		d.Contact = r.nameAddr(d.Contact, known)
	}
}

func (r *redactor) summary(s *kv.Summary) {
	for i := range s.Recipients {
		s.Recipients[i].AOR = r.aor(s.Recipients[i].AOR)
	}
}
