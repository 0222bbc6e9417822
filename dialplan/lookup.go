// Package dialplan turns mod_xml_curl requests into typed lookups and renders the XML
// documents FreeSWITCH expects back: a chatplan that hands a message to sipsilo, or
// "not found", which makes FreeSWITCH carry on as if sipsilo were not there.
package dialplan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every Parse and CheckMessage error: the request is not a
// well-formed xml_curl lookup. The messages never quote values, which may come from
// the sender, so they can be logged at any level.
var ErrMalformed = errors.New("malformed xml_curl request")

// ErrBadField is wrapped by CheckMessage errors for a field sipsilo cannot keep:
// longer than the store, the admin API and SIP carry, or holding control
// characters. It wraps ErrMalformed.
var ErrBadField = fmt.Errorf("%w: unstorable field", ErrMalformed)

// Lookup is one xml_curl request. For a chatplan lookup the fields are the headers of
// the inbound MESSAGE event (FreeSWITCH 1.10.12 sends them in this order; see
// testdata/xmlcurl). All strings are percent-decoded.
type Lookup struct {
	Hostname string // FreeSWITCH's switchname
	Section  string // "chatplan" for messages
	TagName  string
	KeyName  string
	KeyValue string

	EventName     string
	CoreUUID      string
	EventSequence uint64
	// EventTimestamp is Event-Date-Timestamp, microseconds since the epoch; it does
	// not order messages (it repeats across a burst), Event-Sequence does.
	EventTimestamp int64
	EventDateGMT   string

	Login       string
	Proto       string
	ToProto     string
	DestProto   string
	From        string // user@host
	FromUser    string
	FromHost    string
	FromFull    string // the From header with its tag
	FromSIPIP   string
	FromSIPPort string
	To          string // user@host
	ToUser      string
	ToHost      string
	Subject     string
	Context     string
	Type        string // the MESSAGE's Content-Type
	SIPProfile  string
	MaxForwards int

	// SIPHeaders holds the sip_h_* fields (custom headers on the MESSAGE), prefix
	// stripped, in order.
	SIPHeaders []Field
	// Fields is every form field in the order sent, duplicates included.
	Fields []Field

	// Body is the MESSAGE body from the dynamic URL: the text and md5 parameters
	// of the shipped binding (DecodeText), or the body parameter of older ones.
	// HasBody is false when neither is there: the exact body then comes only from
	// the ESL MESSAGE event. Present but empty is an empty message (docs/decisions.md
	// §4). BodyExact says Body is the MESSAGE body byte for byte (its
	// MD5 matched); otherwise it is the lossy copy, exact except for literal %XX
	// text and (body parameter) leading and trailing blanks.
	Body      []byte
	HasBody   bool
	BodyExact bool
}

// Get returns the first form field with the given name.
func (l *Lookup) Get(name string) (string, bool) {
	for _, f := range l.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// Parse reads an xml_curl request: rawQuery is the URL's raw query (it carries the
// body with use-dynamic-url) and form the request body.
func Parse(rawQuery string, form []byte) (*Lookup, error) {
	fields := splitForm(form)
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty form", ErrMalformed)
	}
	l := &Lookup{Fields: fields}
	var seen uint64 // slots already filled: the first value wins, later chatplan passes append copies
	var nums [3]string
	for _, f := range fields {
		if f.Name == "" {
			return nil, fmt.Errorf("%w: field without a name", ErrMalformed)
		}
		if strings.HasPrefix(f.Name, "sip_h_") {
			l.SIPHeaders = append(l.SIPHeaders, Field{Name: f.Name[len("sip_h_"):], Value: f.Value})
		}
		p, i := l.slot(f.Name, &nums)
		if p == nil || seen&(1<<i) != 0 {
			continue
		}
		seen |= 1 << i
		*p = f.Value
	}
	if err := l.numbers(nums); err != nil {
		return nil, err
	}
	l.queryBody(rawQuery)
	if l.Section == "" {
		return nil, fmt.Errorf("%w: no section field", ErrMalformed)
	}
	return l, nil
}

// queryBody takes the body from the URL's query: text and md5 when both are
// there, else body (the first of each name counts).
func (l *Lookup) queryBody(rawQuery string) {
	var text, sum, body string
	var hasText, hasSum, hasBody bool
	for rest := rawQuery; rest != ""; {
		var p string
		p, rest, _ = strings.Cut(rest, "&")
		name, v, _ := strings.Cut(p, "=")
		switch {
		case name == "text" && !hasText:
			text, hasText = v, true
		case name == "md5" && !hasSum:
			sum, hasSum = v, true
		case name == "body" && !hasBody:
			body, hasBody = v, true
		}
	}
	switch {
	case hasText && hasSum:
		l.Body, l.BodyExact = DecodeText(text, sum)
		l.HasBody = true
	case hasBody:
		l.Body, l.HasBody = []byte(unescape(body)), true
	}
}

// slot returns where a field's value goes, and a small index unique to that place.
func (l *Lookup) slot(name string, nums *[3]string) (*string, int) {
	switch name {
	case "hostname":
		return &l.Hostname, 1
	case "section":
		return &l.Section, 2
	case "tag_name":
		return &l.TagName, 3
	case "key_name":
		return &l.KeyName, 4
	case "key_value":
		return &l.KeyValue, 5
	case "Event-Name":
		return &l.EventName, 6
	case "Core-UUID":
		return &l.CoreUUID, 7
	case "Event-Date-GMT":
		return &l.EventDateGMT, 8
	case "login":
		return &l.Login, 9
	case "proto":
		return &l.Proto, 10
	case "to_proto":
		return &l.ToProto, 11
	case "dest_proto":
		return &l.DestProto, 12
	case "from":
		return &l.From, 13
	case "from_user":
		return &l.FromUser, 14
	case "from_host":
		return &l.FromHost, 15
	case "from_full":
		return &l.FromFull, 16
	case "from_sip_ip":
		return &l.FromSIPIP, 17
	case "from_sip_port":
		return &l.FromSIPPort, 18
	case "to":
		return &l.To, 19
	case "to_user":
		return &l.ToUser, 20
	case "to_host":
		return &l.ToHost, 21
	case "subject":
		return &l.Subject, 22
	case "context":
		return &l.Context, 23
	case "type":
		return &l.Type, 24
	case "sip_profile":
		return &l.SIPProfile, 25
	case "Event-Sequence":
		return &nums[0], 40
	case "Event-Date-Timestamp":
		return &nums[1], 41
	case "max_forwards":
		return &nums[2], 42
	}
	return nil, 0
}

func (l *Lookup) numbers(nums [3]string) error {
	var err error
	if v := nums[0]; v != "" {
		if l.EventSequence, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("%w: Event-Sequence is not a number", ErrMalformed)
		}
	}
	if v := nums[1]; v != "" {
		if l.EventTimestamp, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("%w: Event-Date-Timestamp is not a number", ErrMalformed)
		}
	}
	if v := nums[2]; v != "" {
		if l.MaxForwards, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("%w: max_forwards is not a number", ErrMalformed)
		}
	}
	return nil
}

// Limits of the fields CheckMessage lets through, in bytes: a FreeSWITCH
// Core-UUID is 36, an address part or a content type far below these; values
// beyond them are hostile and would fail the store (kv keys) or the admin API.
const (
	MaxCoreUUID = 64
	MaxAddrPart = 256
	MaxFromFull = 1024
)

// isControl: C0 controls and DEL; CR, LF or NUL in an address or header value
// would split or cut a SIP header and cannot be addressed through the admin API.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Recipient is the AOR the message is for, user@host.
func (l *Lookup) Recipient() string { return l.ToUser + "@" + l.ToHost }

// Sender is the AOR the message came from, user@host.
func (l *Lookup) Sender() string { return l.FromUser + "@" + l.FromHost }

// CheckMessage reports why a chatplan lookup cannot be stored as a message: a field
// sipsilo needs is missing or is not text it can keep exactly (stored strings must be
// valid UTF-8; only the body may hold arbitrary bytes).
func (l *Lookup) CheckMessage() error {
	required := []struct{ name, v string }{
		{"Core-UUID", l.CoreUUID}, {"from_user", l.FromUser}, {"from_host", l.FromHost},
		{"to_user", l.ToUser}, {"to_host", l.ToHost}, {"context", l.Context},
	}
	for _, r := range required {
		if r.v == "" {
			return fmt.Errorf("%w: no %s", ErrMalformed, r.name)
		}
	}
	if _, ok := l.Get("Event-Sequence"); !ok {
		return fmt.Errorf("%w: no Event-Sequence", ErrMalformed)
	}
	for i, f := range l.Fields {
		if !utf8.ValidString(f.Value) || !utf8.ValidString(f.Name) {
			// By position: names of sip_h_* fields come from the sender.
			return fmt.Errorf("%w: form field %d is not valid UTF-8", ErrMalformed, i+1)
		}
	}
	for _, f := range []struct {
		name string
		v    string
		max  int
		text bool // one line of text: it goes into SIP headers or admin API paths
	}{
		{"Core-UUID", l.CoreUUID, MaxCoreUUID, true},
		{"from_user", l.FromUser, MaxAddrPart, true}, {"from_host", l.FromHost, MaxAddrPart, true},
		{"to_user", l.ToUser, MaxAddrPart, true}, {"to_host", l.ToHost, MaxAddrPart, true},
		{"from_full", l.FromFull, MaxFromFull, true}, {"type", l.Type, MaxAddrPart, true},
		{"sip_profile", l.SIPProfile, MaxAddrPart, true}, {"hostname", l.Hostname, MaxAddrPart, true},
		// Only echoed back, escaped, in the chatplan answer.
		{"context", l.Context, MaxAddrPart, false},
	} {
		if len(f.v) > f.max {
			return fmt.Errorf("%w: %s longer than %d bytes", ErrBadField, f.name, f.max)
		}
		if f.text && strings.IndexFunc(f.v, isControl) >= 0 {
			return fmt.Errorf("%w: %s holds a control character", ErrBadField, f.name)
		}
	}
	// Checked before storing, so that nothing is stored that cannot be answered.
	if _, err := EscapeAttr(l.Context); err != nil {
		return fmt.Errorf("%w: context: %v", ErrMalformed, err)
	}
	return nil
}
