package fsemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxResponseBytes is mod_xml_curl's response-max-bytes default (1 MiB);
// a longer answer is an error and the static chatplan is used.
const maxResponseBytes = 1 << 20

// XMLCurl emulates one mod_xml_curl binding for the chatplan section, as
// sipsilo ships it: method unset (POST), disable-100-continue on (the
// default), auth-scheme basic, use-dynamic-url true.
type XMLCurl struct {
	// URL is the gateway-url template, e.g.
	// http://127.0.0.1:8484/fs/chatplan?text=${url_encode(_${_body}_)}&md5=${md5(_${_body}_)}.
	// Only http:// is emulated.
	URL string
	// Timeout is the binding's timeout (CURLOPT_TIMEOUT, whole request);
	// 0 means none, as in FreeSWITCH.
	Timeout time.Duration
	// Credentials is gateway-credentials, "user:pass", sent as basic auth.
	Credentials string
	// Switchname is the form's hostname= value; default: the event's
	// FreeSWITCH-Switchname header.
	Switchname string
	// StaticURL emulates use-dynamic-url=false: the URL is sent verbatim
	// and the event is left alone.
	StaticURL bool
	// Sections is the gateway-url's bindings attribute; "" serves every section.
	// Only xml_locate consults it: a Switch's chatplan always asks its XMLCurl.
	Sections string
}

// Result is what one lookup came to.
type Result struct {
	Request    []byte // the bytes written to the socket
	StatusCode int    // 0 when no HTTP answer was read
	Body       []byte // the answer's body (at most 1 MiB + 1 byte)
	// Fallback: FreeSWITCH ignores the answer and uses its static chatplan
	// (sipsilo's delivers directly). Set for connect errors, timeouts,
	// non-200, oversized or unparsable answers, answers without a chatplan
	// section, and "not found".
	Fallback bool
	NotFound bool   // the answer was <result status="not found"/>
	Reason   string // why Fallback is set
	Err      error  // the network error behind Fallback, if any
}

// switchname is the hostname= value: switch_core_get_switchname() copied
// into 256 bytes.
func (x *XMLCurl) switchname(ev *Event) string {
	host := x.Switchname
	if host == "" {
		host = ev.Get("FreeSWITCH-Switchname")
	}
	return host[:min(len(host), 255)]
}

// locateQuery is what switch_xml_locate hands a binding: the section and the
// tag/attribute/value searched for. A chatplan lookup leaves the last three NULL.
type locateQuery struct{ section, tag, key, value string }

var chatplanQuery = locateQuery{section: "chatplan"}

// prefix is mod_xml_curl's basic_data, written with %s into 512 bytes:
// not URL-encoded, cut at 511.
func prefix(host string, q locateQuery) string {
	p := "hostname=" + host + "&section=" + q.section + "&tag_name=" + q.tag + "&key_name=" + q.key + "&key_value=" + q.value
	return p[:min(len(p), 511)]
}

// pushParams is the use-dynamic-url side effect on the event itself
// (xml_url_fetch): hostname and section go to the top, then the other three,
// each pushed to the top (empty ones only delete). The form is built before
// this, so it never shows them; the post-chatplan event does.
func pushParams(ev *Event, host string, q locateQuery) {
	ev.SetTop("hostname", host)
	ev.SetTop("section", q.section)
	ev.SetTop("tag_name", q.tag)
	ev.SetTop("key_name", q.key)
	ev.SetTop("key_value", q.value)
}

// build makes the request and, with a dynamic URL, applies the side effect
// to ev. It returns the request and the address to dial.
func (x *XMLCurl) build(ev *Event, q locateQuery) (req []byte, addr string, err error) {
	if ev == nil {
		return nil, "", errors.New("fsemu: nil event")
	}
	host := x.switchname(ev)
	data := ParamString(ev, prefix(host, q))
	url := x.URL
	if !x.StaticURL {
		pushParams(ev, host, q)
		url = Expand(ev, url)
	}
	hostport, target, err := splitURL(url)
	if err != nil {
		return nil, "", err
	}
	var b bytes.Buffer
	// libcurl's order: request line, Host, Authorization, User-Agent,
	// Accept, then (POSTFIELDS) Content-Length and Content-Type. The
	// "Expect:" entry of disable-100-continue only suppresses a header.
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", target, hostHeader(hostport))
	if x.Credentials != "" {
		cred := x.Credentials
		if !strings.Contains(cred, ":") {
			cred += ":"
		}
		b.WriteString("Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(cred)) + "\r\n")
	}
	fmt.Fprintf(&b, "User-Agent: freeswitch-xml/1.0\r\nAccept: */*\r\nContent-Length: %d\r\n", len(data))
	b.WriteString("Content-Type: application/x-www-form-urlencoded\r\n\r\n")
	b.WriteString(data)
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(strings.Trim(hostport, "[]"), "80")
	}
	return b.Bytes(), hostport, nil
}

// splitURL takes an http:// URL apart without re-encoding anything: curl
// sends the path and query exactly as the (expanded) template has them.
func splitURL(u string) (hostport, target string, err error) {
	if len(u) < 7 || !strings.EqualFold(u[:7], "http://") {
		return "", "", fmt.Errorf("fsemu: only http:// gateway URLs are emulated, got %q", u)
	}
	rest := u[7:]
	i := strings.IndexAny(rest, "/?#")
	if i < 0 {
		i = len(rest)
	}
	hostport, target = rest[:i], rest[i:]
	if j := strings.IndexByte(target, '#'); j >= 0 {
		target = target[:j] // curl never sends a fragment
	}
	if hostport == "" || strings.Contains(hostport, "@") {
		return "", "", fmt.Errorf("fsemu: unsupported host part in %q", u)
	}
	if !strings.HasPrefix(target, "/") {
		target = "/" + target
	}
	return hostport, target, nil
}

// hostHeader drops the default port, as curl does.
func hostHeader(hostport string) string {
	if h, p, err := net.SplitHostPort(hostport); err == nil && p == "80" {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return hostport
}

// BuildRequest returns the exact bytes FreeSWITCH would send for ev, without
// touching ev (the dynamic-URL side effect is applied to a copy).
func (x *XMLCurl) BuildRequest(ev *Event) ([]byte, error) {
	if ev == nil {
		return nil, errors.New("fsemu: nil event")
	}
	req, _, err := x.build(ev.Clone(), chatplanQuery)
	return req, err
}

// Lookup does what mod_xml_curl does for one chatplan lookup: a new TCP
// connection, the request written verbatim, the answer read and judged, the
// connection closed. Unless StaticURL is set it also changes ev as FreeSWITCH
// does (hostname and section pushed to the top). Failures of the backend are
// not errors: they come back as Result.Fallback. The error is for a request
// that cannot be built.
func (x *XMLCurl) Lookup(ctx context.Context, ev *Event) (*Result, error) {
	req, addr, err := x.build(ev, chatplanQuery)
	if err != nil {
		return nil, err
	}
	res := &Result{Request: req}
	if x.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, x.Timeout)
		defer cancel()
	}
	fail := func(reason string, err error) (*Result, error) {
		res.Fallback, res.Reason, res.Err = true, reason, err
		return res, nil
	}
	res.StatusCode, res.Body, err = Exchange(ctx, addr, req)
	var xe *ExchangeError
	if errors.As(err, &xe) {
		return fail(xe.Stage, xe.Err)
	}
	if len(res.Body) > maxResponseBytes {
		return fail("answer larger than response-max-bytes", nil)
	}
	if res.StatusCode != http.StatusOK {
		return fail("Received HTTP error "+strconv.Itoa(res.StatusCode), nil)
	}
	v := judgeDoc(res.Body)
	res.NotFound = v.notFound
	if v.section == nil {
		return fail(v.reason, nil)
	}
	return res, nil
}

// ExchangeError says at which step an exchange failed, in mod_xml_curl's terms.
type ExchangeError struct {
	Stage string
	Err   error
}

func (e *ExchangeError) Error() string { return e.Stage + ": " + fmt.Sprint(e.Err) }
func (e *ExchangeError) Unwrap() error { return e.Err }

// Exchange is mod_xml_curl's side of one HTTP exchange: a new TCP connection to addr,
// req written verbatim, one answer read (at most response-max-bytes + 1 bytes of
// body), the connection closed. Tests use it to replay captured requests byte for
// byte. Failures are *ExchangeError.
func Exchange(ctx context.Context, addr string, req []byte) (status int, body []byte, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, nil, &ExchangeError{"connect failed (curl error 7 or 28)", err}
	}
	defer conn.Close()
	// Whatever ends the context (timeout or caller) unblocks the socket.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return 0, nil, &ExchangeError{"write failed", err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodPost})
	if err != nil {
		return 0, nil, &ExchangeError{"no HTTP answer (curl error 28 on timeout)", errors.Join(err, ctx.Err())}
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, body, &ExchangeError{"answer cut short", errors.Join(err, ctx.Err())}
	}
	return resp.StatusCode, body, nil
}

// Process runs a whole chatplan pass like mod_sms: Lookup, then the answer
// (or, on fallback, the static chatplan) applied to ev.
func (x *XMLCurl) Process(ctx context.Context, ev *Event) (*Outcome, *Result, error) {
	res, err := x.Lookup(ctx, ev)
	if err != nil {
		return nil, nil, err
	}
	var doc []byte
	if !res.Fallback {
		doc = res.Body
	}
	out, err := ApplyChatplan(doc, ev)
	if out != nil && res.Fallback {
		out.Reason = res.Reason
	}
	return out, res, err
}
