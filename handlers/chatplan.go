package handlers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/dialplan"
	"github.com/sipsilo/sipsilo/kv"
)

// ChatplanConfig decides which messages sipsilo takes over.
type ChatplanConfig struct {
	// Domains are the local domains whose users sipsilo serves; empty means every
	// recipient the chatplan sends.
	Domains []string
	// SkipTypes are content types left to FreeSWITCH (typing notifications and
	// delivery reports are not worth storing).
	SkipTypes []string
	// MaxBody is the largest message body stored, in bytes.
	MaxBody int
	// MaxForm bounds the form FreeSWITCH posts (event headers only, ~1 KB).
	MaxForm int64
	// AnswerTimeout is the hard deadline for answering; it must stay far below the
	// xml_curl binding's timeout (docs/decisions.md §5).
	AnswerTimeout time.Duration
	// User and Password, when set, are required as HTTP basic auth (what xml_curl's
	// gateway-credentials sends).
	User, Password string
	// ServiceAddress is the address notices to senders come from (relay's
	// notices); messages from it are never stored, so a notice cannot loop
	// through sipsilo. Empty: none.
	ServiceAddress string
	// BodyEvents reports whether the exact body of a message can still arrive over
	// the event socket (it is connected and subscribed). A lookup without an exact
	// body in the query is stored only when it can: the event fires once, and a
	// message sipsilo owns without ever getting its exact body is lost or altered.
	// Nil: never.
	BodyEvents func() bool
	// Targets, if set, returns the keys of the recipient's devices a message
	// received now must reach (presence's Targets). With two or more the message
	// gets a copy per device (docs/decisions.md §29); with fewer it is stored
	// exactly as without this. It runs on the request's goroutine: keep it cheap.
	Targets func(aor string) []string
	// Queued, if set, is told about each message sipsilo now owns: stored, and its
	// answer written to FreeSWITCH. It must not block (relay wakes the recipient).
	Queued func(m *kv.Message)
	// Observe, if set, is told of every answer: its kind (AnswerFinal,
	// AnswerNotFound, AnswerLost), why (the Why constants) and how long the
	// handler took to write it. It runs on the request's goroutine: keep it cheap.
	Observe func(answer, why string, took time.Duration)
}

// Defaults for ChatplanConfig's zero fields.
const (
	DefaultMaxBody       = 64 << 10
	DefaultMaxForm       = 64 << 10
	DefaultAnswerTimeout = 500 * time.Millisecond
)

// DefaultSkipTypes are the content types not stored unless configured otherwise.
var DefaultSkipTypes = []string{"application/im-iscomposing+xml", "message/imdn+xml"}

type chatplan struct {
	cfg     ChatplanConfig
	domains map[string]bool
	skip    map[string]bool
	store   Store
	log     *slog.Logger
}

func newChatplan(cfg ChatplanConfig, store Store, log *slog.Logger) (*chatplan, error) {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxForm <= 0 {
		cfg.MaxForm = DefaultMaxForm
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = DefaultAnswerTimeout
	}
	if cfg.SkipTypes == nil {
		cfg.SkipTypes = DefaultSkipTypes
	}
	h := &chatplan{cfg: cfg, domains: domainSet(cfg.Domains), skip: map[string]bool{}, store: store, log: log}
	for _, t := range cfg.SkipTypes {
		mt, _, err := mime.ParseMediaType(t)
		if err != nil {
			return nil, errorf("skip type %q: %v", t, err)
		}
		h.skip[mt] = true
	}
	return h, nil
}

// serve implements intake (docs/architecture.md, "Intake"): decide, store durably, then answer the chatplan
// that makes FreeSWITCH hand the message over. Every other outcome answers "not found"
// (or an HTTP error, which FreeSWITCH treats the same way), and FreeSWITCH delivers the
// message as it would without sipsilo.
func (h *chatplan) serve(c echo.Context) error {
	start := time.Now()
	answer, why, st, err := h.answer(c)
	if st.m != nil {
		// Written here, once answer's frame is gone: the write sorts the
		// response's headers deep in net/http, and from inside answer the
		// handler's stack outgrew its start size, to be copied on every
		// request after each collection had shrunk it.
		answer, why = h.final(c, st)
	}
	if h.cfg.Observe != nil {
		h.cfg.Observe(answer, why, time.Since(start))
	}
	return err
}

// stored is a message answer has stored: serve then answers it final.
type stored struct {
	id string
	m  *kv.Message
	l  *dialplan.Lookup
}

// answer decides, and writes the answer unless the message was stored (st);
// it returns what it answered and why.
func (h *chatplan) answer(c echo.Context) (answer, why string, st stored, err error) {
	// leave answers not found: FreeSWITCH delivers the message as stock.
	leave := func(status int, why string) (string, string, stored, error) {
		return AnswerNotFound, why, stored{}, notFound(c, status)
	}
	req := c.Request()
	ctx, cancel := context.WithTimeout(req.Context(), h.cfg.AnswerTimeout)
	defer cancel()

	form, err := readForm(c.Response(), req, h.cfg.MaxForm)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.log.Warn("chatplan form over limit", "limit", h.cfg.MaxForm)
			return leave(http.StatusRequestEntityTooLarge, WhyFormTooLarge)
		}
		h.log.Warn("chatplan form unreadable", "err", err)
		return leave(http.StatusBadRequest, WhyBadRequest)
	}
	l, err := dialplan.Parse(req.URL.RawQuery, form)
	if err != nil {
		h.log.Warn("chatplan request rejected", "err", err)
		return leave(http.StatusBadRequest, WhyBadRequest)
	}
	if l.Section != "chatplan" {
		return leave(http.StatusOK, WhyOtherSection)
	}
	if l.TagName != "" {
		// xml_locate, e.g. sipsilo check-fs; never a message
		answer, why, err := h.lookup(c, l)
		return answer, why, stored{}, err
	}
	if err := l.CheckMessage(); err != nil {
		// The error names the field, never its value.
		h.log.Warn("chatplan request rejected", "err", err)
		if errors.Is(err, dialplan.ErrBadField) {
			return leave(http.StatusBadRequest, WhyBadField)
		}
		return leave(http.StatusBadRequest, WhyBadRequest)
	}
	if why := h.pass(l); why != "" {
		if h.log.Enabled(ctx, slog.LevelDebug) {
			h.log.Debug("left to FreeSWITCH", "why", why, "from", l.Sender(), "to", l.Recipient())
		}
		return leave(http.StatusOK, why)
	}

	if !l.BodyExact && (h.cfg.BodyEvents == nil || !h.cfg.BodyEvents()) {
		// No exact copy of the body in the query (a binding without the dynamic
		// URL, or the older lossy `body=` one) and no event socket to bring the
		// exact one: FreeSWITCH delivers it as stock (docs/decisions.md §25).
		h.log.Warn("message without an exact body parameter while the event socket is down, left to FreeSWITCH " +
			"(give the chatplan binding the dynamic URL that carries the body and its md5)")
		return leave(http.StatusOK, WhyNoBodySource)
	}
	m := newMessage(l)
	if h.cfg.Targets != nil {
		m.Devices = kv.Copies(h.cfg.Targets(m.To))
	}
	id, err := h.store.Enqueue(ctx, m)
	if errors.Is(err, kv.ErrQuota) {
		// Over quota: FreeSWITCH delivers it as stock (or logs "Nobody to send
		// to"); the store counts the refusal.
		h.log.Debug("recipient over quota, left to FreeSWITCH", "to", l.Recipient())
		return leave(http.StatusOK, WhyOverQuota)
	}
	if errors.Is(err, kv.ErrUnstorable) {
		h.log.Warn("chatplan request rejected", "err", err)
		return leave(http.StatusBadRequest, WhyBadField)
	}
	if err != nil {
		// FreeSWITCH delivers it as stock; nothing is lost, nothing is owned.
		h.log.Error("message not stored, left to FreeSWITCH", "err", err)
		return leave(http.StatusOK, storeFailure(err))
	}
	return "", "", stored{id: id, m: m, l: l}, nil
}

// final answers a stored message: the chatplan that makes FreeSWITCH hand it
// over, or, when that cannot be written, its release (docs/decisions.md §5).
func (h *chatplan) final(c echo.Context, st stored) (answer, why string) {
	req, id, l := c.Request(), st.id, st.l
	doc, err := dialplan.Chatplan(l.Context, id)
	if err == nil {
		err = req.Context().Err() // FreeSWITCH gave up on this request
	}
	if err == nil {
		// With its length known the answer leaves in one write, not chunked in two.
		c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(doc)))
		err = c.Blob(http.StatusOK, "text/xml", doc)
	}
	if err == nil {
		// Push the answer out now: a failed write is the last sign that FreeSWITCH did
		// not get it and will deliver the message itself.
		err = http.NewResponseController(c.Response().Writer).Flush()
	}
	if err != nil {
		h.release(id, err)
		return AnswerLost, WhyReleased
	}
	if h.log.Enabled(req.Context(), slog.LevelDebug) { // the addresses are built only to be logged
		h.log.Debug("stored", "id", id, "from", l.Sender(), "to", l.Recipient(), "bytes", len(l.Body))
	}
	if h.cfg.Queued != nil {
		h.cfg.Queued(st.m)
	}
	return AnswerFinal, WhyStored
}

// storeFailure says why a message was not stored: the answer's deadline, the
// request's end, or the store itself.
func storeFailure(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return WhyDeadline
	case errors.Is(err, context.Canceled):
		return WhyGone
	}
	return WhyStoreError
}

// pass returns why a message is left to FreeSWITCH (a Why constant), or "" to
// store it.
func (h *chatplan) pass(l *dialplan.Lookup) string {
	if len(h.domains) > 0 && !h.domains[strings.ToLower(l.ToHost)] {
		return WhyNotLocal
	}
	if l.DestProto != "" && l.DestProto != "sip" {
		return WhyNotSIP
	}
	if len(h.skip) > 0 { // parsing allocates: only with --skip-types
		if mt, _, err := mime.ParseMediaType(l.Type); err == nil && h.skip[mt] {
			return WhySkippedType
		}
	}
	if len(l.Body) > h.cfg.MaxBody {
		return WhyTooLarge
	}
	if h.cfg.ServiceAddress != "" && strings.EqualFold(l.Sender(), h.cfg.ServiceAddress) {
		return WhyFromService
	}
	return ""
}

// release records that FreeSWITCH did not get the answer, so it delivers the message
// itself and sipsilo must not (docs/decisions.md §5).
func (h *chatplan) release(id string, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.store.Release(ctx, id, "chatplan answer not delivered: "+cause.Error()); err != nil {
		// The message stays queued: a possible duplicate, never a loss.
		h.log.Error("answer lost and release failed; message may be delivered twice", "id", id, "cause", cause, "err", err)
		return
	}
	h.log.Warn("answer not delivered, message released to FreeSWITCH", "id", id, "cause", cause)
}

// domainSet is --domains as a set of lower-case names; empty means every domain.
func domainSet(domains []string) map[string]bool {
	set := map[string]bool{}
	for _, d := range domains {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			set[d] = true
		}
	}
	return set
}

func newMessage(l *dialplan.Lookup) *kv.Message {
	m := &kv.Message{
		From:        l.Sender(),
		To:          l.Recipient(),
		FromFull:    l.FromFull,
		ContentType: l.Type,
		Profile:     l.SIPProfile,
		Context:     l.Context,
		Hostname:    l.Hostname,
		CoreUUID:    l.CoreUUID,
		EventSeq:    l.EventSequence,
		EventTime:   l.EventTimestamp,
		Received:    time.Now(),
	}
	if d, ok := senderExpires(l); ok {
		m.Expires = m.Received.Add(d) // kv keeps the shorter of this and the TTL
	}
	switch {
	case l.BodyExact:
		m.Body, m.BodySource = l.Body, kv.BodyQueryExact
	case l.HasBody:
		m.Body, m.BodySource = l.Body, kv.BodyQuery
	}
	return m
}

// readForm reads the request body, at most limit bytes, in one allocation when the
// client says how long it is (libcurl always does).
func readForm(w http.ResponseWriter, req *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, req.Body, limit)
	if n := req.ContentLength; n >= 0 && n <= limit {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

func notFound(c echo.Context, status int) error {
	return c.Blob(status, "text/xml", dialplan.NotFound())
}

// senderExpires is the lifetime the sender gave in an Expires header (delta
// seconds), if the lookup carries one. FreeSWITCH 1.10.12 passes neither the
// header nor a sip_h_Expires field to the chatplan (docs/decisions.md §15), so
// today the TTL is sipsilo's configuration alone; this takes effect if a
// version or a custom header ever forwards it. Zero and junk are ignored.
func senderExpires(l *dialplan.Lookup) (time.Duration, bool) {
	v, ok := "", false
	for _, f := range l.SIPHeaders {
		if strings.EqualFold(f.Name, "Expires") {
			v, ok = f.Value, true
			break
		}
	}
	if !ok {
		v, ok = l.Get("Expires")
	}
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
