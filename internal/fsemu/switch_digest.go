package fsemu

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// nonceTTL is the profile's nonce-ttl (60 s in the captured config).
const nonceTTL = 60 * time.Second

// authResult is what sofia_reg_parse_auth concludes.
type authResult int

const (
	authMissing   authResult = iota // no credentials: challenge
	authStale                       // unknown or expired nonce: challenge again
	authForbidden                   // wrong user, realm or password: 403
	authOK
)

// challenge is sofia_reg_auth_challenge's header value: realm = the domain
// (challenge-realm=auto_from), a UUID nonce, MD5 and qop="auth", in the
// order of sip_01_register.txt.
func (s *Switch) challenge() string {
	nonce := newUUID()
	s.mu.Lock()
	now := time.Now()
	for n, t := range s.nonces {
		if now.Sub(t) > nonceTTL {
			delete(s.nonces, n)
		}
	}
	s.nonces[nonce] = now
	s.mu.Unlock()
	return `Digest realm="` + s.opts.Domain + `", nonce="` + nonce + `", algorithm=MD5, qop="auth"`
}

// checkAuth is sofia_reg_parse_auth for one Authorization or
// Proxy-Authorization header: the user must be in the directory, the realm
// the domain, the nonce one we issued, and the response right (RFC 2617
// with qop=auth, or without qop). It returns the authenticated user.
func (s *Switch) checkAuth(req *sip.Request, header string) (string, authResult) {
	h := req.GetHeader(header)
	if h == nil {
		return "", authMissing
	}
	v := h.Value()
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return "", authMissing
	}
	p := parseDigestParams(rest)
	s.mu.Lock()
	issued, ok := s.nonces[p["nonce"]]
	s.mu.Unlock()
	if !ok || time.Since(issued) > nonceTTL {
		return "", authStale
	}
	pass, ok := s.opts.Users[p["username"]]
	if !ok || p["realm"] != s.opts.Domain {
		return "", authForbidden
	}
	ha1 := md5hex(p["username"] + ":" + p["realm"] + ":" + pass)
	ha2 := md5hex(req.Method.String() + ":" + p["uri"])
	want := md5hex(ha1 + ":" + p["nonce"] + ":" + ha2)
	if p["qop"] != "" {
		want = md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
	}
	if !strings.EqualFold(want, p["response"]) {
		return "", authForbidden
	}
	return p["username"], authOK
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// parseDigestParams splits `k=v, k="v, w"` into a map (keys lowercased).
func parseDigestParams(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ,\t")
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		rest = strings.TrimLeft(rest, " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				val, rest = rest[1:], ""
			} else {
				val, rest = rest[1:1+end], rest[2+end:]
			}
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		out[k] = val
		s = rest
	}
	return out
}
