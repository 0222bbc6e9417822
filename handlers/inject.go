package handlers

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/kv"
)

// injectRequest is the body of POST /api/v1/messages.
type injectRequest struct {
	From        string  `json:"from"`
	To          string  `json:"to"`
	FromFull    string  `json:"from_full"`
	ContentType string  `json:"content_type"`
	Body        *string `json:"body"`        // UTF-8 text, or
	BodyBase64  *string `json:"body_base64"` // any bytes
}

// maxAddrLen bounds from and to (kv refuses recipients above 1 KiB; a SIP
// address anywhere near that is hostile).
const maxAddrLen = 256

// inject: POST /api/v1/messages stores a message from another system for
// store-and-forward, through the same kv.Enqueue as intake (the queue order of a
// message without a Core-UUID is intake time plus a counter, docs/decisions.md
// §2). Its body is final at once: no ESL copy will come. 201 with the
// id; 413 over --max-body; 429 over the recipient's quota.
func (a *actions) inject(c echo.Context) error {
	req := c.Request()
	// Room for the body in base64 plus the other fields.
	limit := int64(a.maxBody)*4/3 + 16<<10
	req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
	var in injectRequest
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request over the body limit (%d bytes)", a.maxBody))
		}
		return apiError(c, http.StatusBadRequest, "body must be a JSON object: "+err.Error())
	}
	// One object and nothing after it: trailing bytes are a client bug (or a
	// second message) that storing the first would hide.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apiError(c, http.StatusBadRequest, "body must be one JSON object, with nothing after it")
	}
	m, status, msg := in.message(a.maxBody)
	if status != 0 {
		return apiError(c, status, msg)
	}
	if _, host, _ := strings.Cut(m.To, "@"); len(a.domains) > 0 && !a.domains[strings.ToLower(host)] {
		return apiError(c, http.StatusBadRequest, "to: not a user of this server (--domains)")
	}
	if a.targets != nil {
		m.Devices = kv.Copies(a.targets(m.To))
	}
	ctx, cancel := actionContext(c)
	defer cancel()
	id, err := a.do.Enqueue(ctx, m)
	if errors.Is(err, kv.ErrQuota) {
		c.Response().Header().Set("Retry-After", "60")
		return apiError(c, http.StatusTooManyRequests,
			"recipient's queue is full (quota "+strconv.Itoa(a.do.Quota())+" queued messages); retry once it drains")
	}
	if err != nil {
		return apiError(c, http.StatusServiceUnavailable, "not stored: "+err.Error())
	}
	a.do.Queued(m)
	return c.JSON(http.StatusCreated, map[string]string{"id": id, "state": string(kv.StateQueued)})
}

// message validates the request and builds the message; status is 0 when valid.
func (in *injectRequest) message(maxBody int) (m *kv.Message, status int, msg string) {
	bad := func(s string) (*kv.Message, int, string) { return nil, http.StatusBadRequest, s }
	if !validAOR(in.From) {
		return bad("from must be user@host")
	}
	if !validAOR(in.To) {
		return bad("to must be user@host")
	}
	if len(in.FromFull) > 1024 || !printable(in.FromFull) {
		return bad("from_full must be one line of printable text")
	}
	ct := in.ContentType
	if ct == "" {
		ct = "text/plain"
	}
	if len(ct) > 255 || !printable(ct) {
		return bad("content_type must be a media type")
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return bad("content_type must be a media type")
	}
	var body []byte
	switch {
	case (in.Body == nil) == (in.BodyBase64 == nil):
		return bad("give exactly one of body and body_base64")
	case in.Body != nil:
		body = []byte(*in.Body)
	default:
		b, err := base64.StdEncoding.DecodeString(*in.BodyBase64)
		if err != nil {
			return bad("body_base64 is not base64")
		}
		body = b
	}
	if len(body) > maxBody {
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is %d bytes, over the limit of %d", len(body), maxBody)
	}
	return &kv.Message{
		From: in.From, To: in.To, FromFull: in.FromFull, ContentType: ct,
		Body: body, BodySource: kv.BodyAPI, BodyFinal: true, Received: time.Now(),
	}, 0, ""
}

// validAOR accepts user@host with a conservative character set: the user part
// from RFC 3261's unreserved and user-unreserved characters (no ';', '?' or
// '/', which would add URI parameters or headers when FreeSWITCH builds
// sip:<to>), the host a name, IPv4 or bracketed IPv6 with an optional port.
func validAOR(s string) bool {
	user, host, ok := strings.Cut(s, "@")
	if !ok || user == "" || host == "" || len(s) > maxAddrLen || strings.Contains(host, "@") {
		return false
	}
	for i := 0; i < len(user); i++ {
		c := user[i]
		if !alnum(c) && !strings.ContainsRune("-_.!~*'()&=+$,%", rune(c)) {
			return false
		}
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !alnum(c) && !strings.ContainsRune("-.:[]", rune(c)) {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// printable: valid UTF-8 without control characters (no CR/LF: these values
// end up in SIP headers).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
