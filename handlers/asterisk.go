package handlers

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/dialplan"
	"github.com/sipsilo/sipsilo/kv"
)

// AsteriskPath is where the CURL() of sipsilo's Asterisk message context posts
// (asterisk-conf/extensions_sipsilo.conf).
const AsteriskPath = "/ast/message"

// AsteriskOwned is the one answer that makes the context end without
// Asterisk's stock MessageSend; AsteriskStock is what sipsilo answers when it
// leaves a message to Asterisk (any other text, an error status or no answer
// at all do the same).
const (
	AsteriskOwned = "owned"
	AsteriskStock = "stock"
)

// WhyNotExact: the body Asterisk passed is not the sender's (its length is not
// the sender's Content-Length); an Asterisk intake reason besides the
// chatplan's.
const WhyNotExact = "not_exact"

// WhyOutOfReach: the recipient has a registered device only Asterisk can reach
// (docs/decisions.md §33); Asterisk delivers the message as stock.
const WhyOutOfReach = "out_of_reach"

// DefaultAsteriskAnswerTimeout is the intake's own deadline: half the shipped
// CURLOPT(httptimeout) of 2 s, so that an "owned" answer reaches an Asterisk
// that still waits for it (docs/decisions.md §31).
const DefaultAsteriskAnswerTimeout = time.Second

// AsteriskConfig configures the Asterisk intake. Policy carries the rules
// shared with the FreeSWITCH chatplan (Domains, SkipTypes, MaxBody,
// ServiceAddress, Queued, Observe); its AnswerTimeout, when set, replaces
// DefaultAsteriskAnswerTimeout.
type AsteriskConfig struct {
	Policy ChatplanConfig
	// Domain is the host of every recipient AOR: Asterisk names endpoints
	// without one, and the AMI adapter uses the same Domain for reachability.
	Domain string
	// OutOfReach, if set, reports whether the recipient has a registered
	// device sipsilo cannot reach over its direct path (NAT, TCP): its
	// messages are left to Asterisk, which reaches it (docs/decisions.md §33).
	OutOfReach func(aor string) bool
}

type astIntake struct {
	cp         *chatplan
	domain     string
	limit      int64
	outOfReach func(aor string) bool
}

// RegisterAsterisk adds the Asterisk intake (POST AsteriskPath) to e.
func RegisterAsterisk(e *echo.Echo, cfg AsteriskConfig, store Store, log *slog.Logger) error {
	if cfg.Policy.AnswerTimeout <= 0 {
		cfg.Policy.AnswerTimeout = DefaultAsteriskAnswerTimeout
	}
	if cfg.Domain == "" {
		return errorf("asterisk intake: no domain")
	}
	cp, err := newChatplan(cfg.Policy, store, log.With("component", "asterisk-intake"))
	if err != nil {
		return err
	}
	h := &astIntake{cp: cp, domain: cfg.Domain, outOfReach: cfg.OutOfReach,
		limit: int64(base64.StdEncoding.EncodedLen(cp.cfg.MaxBody)) + 1024}
	e.POST(AsteriskPath, h.serve)
	return nil
}

func (h *astIntake) serve(c echo.Context) error {
	start := time.Now()
	answer, why, err := h.answer(c, start)
	if h.cp.cfg.Observe != nil {
		h.cp.cfg.Observe(answer, why, time.Since(start))
	}
	return err
}

// astMessage is one MESSAGE as the message context describes it.
type astMessage struct {
	exten, from, to, callID, ctype string
	clen                           int
	body                           []byte
}

// answer implements the Asterisk intake (docs/decisions.md §31): the body is
// exact when its length is the sender's Content-Length; sipsilo stores it and
// answers "owned" within its deadline, or answers "stock" and Asterisk
// delivers the message itself.
func (h *astIntake) answer(c echo.Context, start time.Time) (answer, why string, err error) {
	leave := func(status int, why string) (string, string, error) {
		return AnswerNotFound, why, c.String(status, AsteriskStock)
	}
	req := c.Request()
	ctx, cancel := context.WithTimeout(req.Context(), h.cp.cfg.AnswerTimeout)
	defer cancel()
	raw, err := readForm(c.Response(), req, h.limit)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return leave(http.StatusRequestEntityTooLarge, WhyTooLarge)
		}
		return leave(http.StatusBadRequest, WhyBadRequest)
	}
	m, err := parseAstMessage(req.URL.RawQuery, raw)
	if err != nil {
		h.cp.log.Warn("asterisk intake request rejected", "err", err)
		return leave(http.StatusBadRequest, WhyBadField)
	}
	if len(m.body) != m.clen {
		// Asterisk lost or cut the body (over 1 KiB, a NUL, trailing CR/LF):
		// stock delivery does the same, and sipsilo must not own it.
		h.cp.log.Debug("body not exact, left to Asterisk", "clen", m.clen, "got", len(m.body))
		return leave(http.StatusOK, WhyNotExact)
	}
	fromUser, fromHost := uriUserHost(m.from)
	l := &dialplan.Lookup{FromUser: fromUser, FromHost: fromHost, ToUser: m.exten, ToHost: h.domain,
		Type: m.ctype, Body: m.body}
	if why := h.cp.pass(l); why != "" {
		return leave(http.StatusOK, why)
	}
	if h.outOfReach != nil && h.outOfReach(l.Recipient()) {
		return leave(http.StatusOK, WhyOutOfReach)
	}
	msg := &kv.Message{From: l.Sender(), To: l.Recipient(), FromFull: m.from, ContentType: m.ctype,
		Body: m.body, BodySource: kv.BodyAPI, BodyFinal: true, Profile: "asterisk", Received: start}
	id, err := h.cp.store.Enqueue(ctx, msg)
	switch {
	case errors.Is(err, kv.ErrQuota):
		return leave(http.StatusOK, WhyOverQuota)
	case errors.Is(err, kv.ErrUnstorable):
		return leave(http.StatusBadRequest, WhyBadField)
	case err != nil:
		h.cp.log.Error("message not stored, left to Asterisk", "err", err)
		return leave(http.StatusOK, storeFailure(err))
	}
	if err = ctx.Err(); err == nil && time.Since(start) >= h.cp.cfg.AnswerTimeout {
		err = context.DeadlineExceeded
	}
	if err == nil {
		c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(AsteriskOwned)))
		if err = c.String(http.StatusOK, AsteriskOwned); err == nil {
			err = http.NewResponseController(c.Response().Writer).Flush()
		}
	} else if !c.Response().Committed {
		_ = c.String(http.StatusOK, AsteriskStock)
	}
	if err != nil {
		// Asterisk may have given up waiting and delivered it itself: sipsilo
		// must not deliver it too.
		h.cp.release(id, err)
		return AnswerLost, WhyReleased, nil
	}
	h.cp.log.Debug("stored", "id", id, "from", msg.From, "to", msg.To, "bytes", len(msg.Body))
	if h.cp.cfg.Queued != nil {
		h.cp.cfg.Queued(msg)
	}
	return AnswerFinal, WhyStored, nil
}

// maxAstField bounds each query field (addresses, Call-ID, content type).
const maxAstField = 1024

var errAstField = errors.New("asterisk intake: missing or unfit field")

// parseAstMessage reads the query the message context builds and the base64
// body it posts.
func parseAstMessage(rawQuery string, post []byte) (*astMessage, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, err
	}
	get := func(name string, required bool) (string, error) {
		v := q.Get(name)
		if (required && v == "") || len(v) > maxAstField || !printable(v) {
			return "", errors.Join(errAstField, errors.New(name))
		}
		return v, nil
	}
	m := &astMessage{}
	var clen string
	for _, f := range []struct {
		name     string
		dst      *string
		required bool
	}{{"exten", &m.exten, true}, {"from", &m.from, true}, {"to", &m.to, false}, {"cid", &m.callID, false},
		{"ct", &m.ctype, false}, {"clen", &clen, true}} {
		if *f.dst, err = get(f.name, f.required); err != nil {
			return nil, err
		}
	}
	if m.clen, err = strconv.Atoi(clen); err != nil || m.clen < 0 {
		return nil, errors.Join(errAstField, errors.New("clen"))
	}
	if !validUser(m.exten) {
		return nil, errors.Join(errAstField, errors.New("exten"))
	}
	if m.ctype == "" {
		m.ctype = "text/plain"
	}
	// libcurl posts the data as given: base64 has no character a form
	// encoding would change.
	m.body, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(post)))
	if err != nil {
		return nil, errors.Join(errAstField, errors.New("body"))
	}
	return m, nil
}

// validUser: an endpoint name fit for user@host (validAOR's user part).
func validUser(s string) bool { return validAOR(s + "@h") }

// uriUserHost takes user and host (without port) from a name-addr or
// addr-spec such as `"Alice" <sip:1000@127.0.0.1:5060>;tag=x`.
func uriUserHost(addr string) (user, host string) {
	s := addr
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[i+1:] // the scheme
	}
	s, _, _ = strings.Cut(s, ";")
	user, host, ok := strings.Cut(s, "@")
	if !ok {
		user, host = "", user
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !utf8.ValidString(user) {
		user = ""
	}
	return user, host
}
