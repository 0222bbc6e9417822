package sipptest

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Received is one request the phone read, as sipp logged it.
type Received struct {
	Method      string
	From, To    string // header values
	CallID      string
	CSeq        string // e.g. "123278601 MESSAGE"
	ContentType string
	Date        string // the Date header, "" if none
	Body        []byte // byte for byte (see Truncated)
	Raw         []byte // the whole datagram
	// Status is the final status the phone answered with (0: not logged).
	Status int
	// Truncated: sipp logs a message as a C string, so a datagram with a
	// NUL byte is logged only up to it; Raw and Body are then cut short.
	Truncated bool
	At        time.Time // sipp's timestamp of the read
	msg       *sip.Request
}

// Header is the first header called name ("" if none).
func (r Received) Header(name string) string {
	if r.msg == nil {
		return ""
	}
	if h := r.msg.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// traceEntry is one message of sipp's -trace_msg file.
type traceEntry struct {
	at        time.Time
	sent      bool
	raw       []byte
	truncated bool
}

const traceSep = "----------------------------------------------- "

// traceHead matches the line after the separator:
// "UDP message received [292] bytes :" and "UDP message sent (237 bytes):".
var traceHead = regexp.MustCompile(`^[A-Za-z0-9]+ (?:control )?message (received \[(\d+)\] bytes :|sent \((\d+) bytes\):)$`)

// nextEntry is the start of a logged message entry inside another one's
// window (only when that one was cut short).
var nextEntry = regexp.MustCompile(`\n` + traceSep + `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\n[A-Za-z0-9]+ (?:control )?message (?:received \[\d+\] bytes :|sent \(\d+ bytes\):)\n`)

// parseTrace splits sipp's message trace into its messages. sipp writes
// (and flushes) each entry as
//
//	----------------------------------------------- <date> <time>\n
//	UDP message received [<n>] bytes :\n
//	\n
//	<n bytes of the datagram>\n
//
// (sent: "UDP message sent (<n> bytes):"), so the byte count delimits the
// message exactly, whatever its body holds. Other lines are skipped; an
// entry not yet completely written ends the parse.
func parseTrace(b []byte) []traceEntry {
	var out []traceEntry
	pos := 0
	for pos < len(b) {
		i := indexLineStart(b, pos, traceSep)
		if i < 0 {
			break
		}
		line, next, ok := lineAt(b, i)
		if !ok {
			break
		}
		at, _ := time.ParseInLocation("2006-01-02 15:04:05.000000", strings.TrimPrefix(line, traceSep), time.Local)
		head, next2, ok := lineAt(b, next)
		if !ok {
			break
		}
		m := traceHead.FindStringSubmatch(head)
		if m == nil || next2 >= len(b) {
			pos = next
			continue
		}
		if b[next2] != '\n' { // the empty line before the message
			pos = next
			continue
		}
		start := next2 + 1
		n, _ := strconv.Atoi(m[2] + m[3])
		e := traceEntry{at: at, sent: m[3] != ""}
		end := start + n
		// sipp logs the datagram as a C string: with a NUL byte in it, fewer
		// than n bytes follow, and the next entry starts inside the window.
		// A complete entry is followed by "\n" and the next separator (or
		// the end of the file); a match of nextEntry before n means the
		// message was cut short.
		complete := end < len(b) && b[end] == '\n' &&
			(end+1 == len(b) || bytes.HasPrefix(b[end+1:], []byte(traceSep)))
		win := b[start:min(end+512, len(b))]
		loc := nextEntry.FindIndex(win)
		switch {
		case complete:
			e.raw = b[start:end]
			pos = end
		case loc != nil && loc[0] < n:
			e.raw = win[:loc[0]]
			e.truncated = true
			pos = start + loc[0] + 1
		case end >= len(b):
			return out // still being written
		default: // something else follows: trust the count
			e.raw = b[start:end]
			pos = end
		}
		out = append(out, e)
	}
	return out
}

// indexLineStart finds s at the start of a line, at or after from.
func indexLineStart(b []byte, from int, s string) int {
	for from <= len(b) {
		i := bytes.Index(b[from:], []byte(s))
		if i < 0 {
			return -1
		}
		i += from
		if i == 0 || b[i-1] == '\n' {
			return i
		}
		from = i + 1
	}
	return -1
}

// lineAt returns the line starting at i and the start of the next one.
func lineAt(b []byte, i int) (string, int, bool) {
	j := bytes.IndexByte(b[i:], '\n')
	if j < 0 {
		return "", 0, false
	}
	return string(b[i : i+j]), i + j + 1, true
}

// requestsFrom pairs the requests sipp read with the final responses it
// sent (by Call-ID and CSeq), drops retransmissions and keeps method ("":
// all).
func requestsFrom(entries []traceEntry, method string) []Received {
	type key struct{ callID, cseq string }
	status := map[key]int{}
	for _, e := range entries {
		if !e.sent {
			continue
		}
		msg, _ := sip.ParseMessage(e.raw)
		res, ok := msg.(*sip.Response)
		if !ok || res.IsProvisional() || res.CallID() == nil || res.CSeq() == nil {
			continue
		}
		k := key{res.CallID().Value(), res.CSeq().Value()}
		if _, seen := status[k]; !seen {
			status[k] = res.StatusCode
		}
	}
	seen := map[string]bool{}
	var out []Received
	for _, e := range entries {
		if e.sent {
			continue
		}
		msg, _ := sip.ParseMessage(e.raw) // a truncated one may fail on its body
		req, ok := msg.(*sip.Request)
		if !ok {
			continue
		}
		if method != "" && !strings.EqualFold(req.Method.String(), method) {
			continue
		}
		r := Received{Method: req.Method.String(), Raw: append([]byte(nil), e.raw...),
			Truncated: e.truncated, At: e.at, msg: req}
		r.Body = append([]byte{}, req.Body()...)
		if e.truncated { // sipgo pads a short body with zeros
			r.Body = nil
			if i := bytes.Index(e.raw, []byte("\r\n\r\n")); i >= 0 {
				r.Body = append([]byte{}, e.raw[i+4:]...)
			}
		}
		if h := req.From(); h != nil {
			r.From = h.Value()
		}
		if h := req.To(); h != nil {
			r.To = h.Value()
		}
		if h := req.CallID(); h != nil {
			r.CallID = h.Value()
		}
		if h := req.CSeq(); h != nil {
			r.CSeq = h.Value()
		}
		if h := req.ContentType(); h != nil {
			r.ContentType = h.Value()
		}
		if h := req.GetHeader("Date"); h != nil {
			r.Date = h.Value()
		}
		branch := ""
		if v := req.Via(); v != nil {
			branch, _ = v.Params.Get("branch")
		}
		id := r.CallID + "\x00" + r.CSeq + "\x00" + branch
		if seen[id] {
			continue // a retransmission
		}
		seen[id] = true
		r.Status = status[key{r.CallID, r.CSeq}]
		out = append(out, r)
	}
	return out
}
