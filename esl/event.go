package esl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Header is one event header as FreeSWITCH sent it.
type Header struct {
	Name, Value string
}

// Event is one FreeSWITCH event. Headers keep FreeSWITCH's order and its
// duplicates: an SMS::DELIVERY_REPORT carries its own Event-Sequence and, later,
// the copied request's (docs/decisions.md §3), and a map would silently
// keep one of them.
type Event struct {
	Name     string // Event-Name
	Subclass string // Event-Subclass, for CUSTOM events
	CoreUUID string // Core-UUID: changes when FreeSWITCH restarts
	Sequence uint64 // Event-Sequence; 0 when absent or not a number
	JobUUID  string // Job-UUID, on BACKGROUND_JOB events
	Headers  []Header
	Body     string // "_body" in text/event-json
}

// Get returns the first value of the header name, compared case-insensitively, or
// "". First, not last, because that is what FreeSWITCH itself answers
// (switch_event_get_header walks the list from its head and compares with
// strcasecmp), and the first copy is the event's own: in a DELIVERY_REPORT the
// first Event-Sequence is the report's, the last the request's. Go's
// encoding/json, decoding into a map or struct, keeps the last.
func (e *Event) Get(name string) string {
	for _, h := range e.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// GetAll returns every value of the header name in order (case-insensitive).
func (e *Event) GetAll(name string) []string {
	var vs []string
	for _, h := range e.Headers {
		if strings.EqualFold(h.Name, name) {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

// ParseJSON decodes the body of a text/event-json frame: one flat JSON object whose
// values are strings, or arrays of strings for FreeSWITCH's array headers. An
// array becomes "ARRAY::v1|:v2", the form FreeSWITCH uses for it in plain events.
// The "_body" key becomes Body; every other key, duplicates included, is a Header.
func ParseJSON(raw []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	e := &Event{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("esl: event json: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("esl: event json: key %v is not a string", tok)
		}
		value, err := readValue(dec)
		if err != nil {
			return nil, fmt.Errorf("esl: event json: value of %q: %w", name, err)
		}
		if name == "_body" {
			e.Body = value
			continue
		}
		e.Headers = append(e.Headers, Header{Name: name, Value: value})
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("esl: event json: data after the object")
	}
	e.Name = e.Get("Event-Name")
	e.Subclass = e.Get("Event-Subclass")
	e.CoreUUID = e.Get("Core-UUID")
	e.JobUUID = e.Get("Job-UUID")
	e.Sequence, _ = strconv.ParseUint(e.Get("Event-Sequence"), 10, 64)
	return e, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("esl: event json: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("esl: event json: got %v, want %v", tok, want)
	}
	return nil
}

// readValue reads one header value. FreeSWITCH writes only strings and arrays of
// strings; numbers, booleans and null are accepted as their text so that a
// hand-written or future event does not cost the whole event.
func readValue(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	switch v := tok.(type) {
	case json.Delim:
		if v != '[' {
			return "", fmt.Errorf("unexpected %v", v)
		}
		var parts []string
		for dec.More() {
			s, err := readScalar(dec)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		if err := expectDelim(dec, ']'); err != nil {
			return "", err
		}
		return "ARRAY::" + strings.Join(parts, "|:"), nil
	default:
		return scalarText(tok)
	}
}

func readScalar(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	return scalarText(tok)
}

func scalarText(tok json.Token) (string, error) {
	switch v := tok.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("unexpected %v", v)
	}
}
