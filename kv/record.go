package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The compact message record (docs/decisions.md §35). A queued short message
// took ≈ 700–900 bytes as JSON: key names, base64 of the body, RFC 3339 times
// and the same reason text twice (Reason and the history's Detail). This record
// is a version byte followed by every field of Message in a fixed order:
// strings and bytes as a length and the bytes, numbers as varints, times as
// nanoseconds relative to Received (most are equal to it), and the strings every
// message repeats (states, kinds, sources, profile, context, content type, the
// fixed reasons) as an index into recordWords. Records written as JSON by
// earlier versions still decode (decodeMessage tells them by their '{').
//
// Version 2 (schema 3) ends with room: a length and that many zero bytes. A
// queued message whose body is not final is written with recordRoom bytes of
// it, and a record written again keeps at least its old length (reencodeMessage):
// closing the wait for the body (a reason, an updated time, a history entry)
// then fits in the record's own bytes, so the leaf page holding it is rewritten
// as it was instead of splitting in two half-empty ones.
//
// recordWords is append-only: a record stores indexes into it, so an entry is
// never removed or reordered; a new word goes at the end.

const (
	recordV1 = 0x01
	recordV2 = 0x02 // recordV1's fields, then the room
)

// recordRoom is the room a queued message awaiting its final body is written
// with: what closing the wait adds is ≈ 15 bytes (an updated time of 6 bytes, a
// history entry of 10, a reason from the word table of 1).
const recordRoom = 24

var recordWords = []string{
	string(StateQueued), string(StateReleased), string(StateDelivered), string(StateDead),
	string(StateNoBody), string(StateExpired), string(StatePurged),
	string(BodyQuery), string(BodyQueryExact), string(BodyESL), string(BodyAPI),
	EventReceived, EventBody, EventNoBody, EventAttempt, EventDelivered, EventReleased, EventDead,
	EventExpired, EventPurged, EventRequeued, EventNotice, NoticeStored, NoticeExpired,
	"internal", "external", "public", "default", "text/plain", intakeInFlight,
	"no ESL MESSAGE event in time; the body checked at intake stands",
	"no body in the chatplan request and no ESL MESSAGE event",
	"exact body not received over ESL in time; the query copy is used",
	"exact body arrived after the grace period",
	"every device's copy is final: none delivered",
}

var recordWordIndex = func() map[string]int {
	m := make(map[string]int, len(recordWords))
	for i, w := range recordWords {
		if _, dup := m[w]; !dup {
			m[w] = i
		}
	}
	return m
}()

// Bounds a decoded record must respect: a damaged record fails to decode instead
// of allocating without end.
const (
	maxRecordList = 1 << 16
)

type recWriter struct{ b []byte }

func (w *recWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *recWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }

// str writes s as 2·len+0 and the bytes, or as 2·i+1 for recordWords[i].
func (w *recWriter) str(s string) {
	if i, ok := recordWordIndex[s]; ok {
		w.uint(uint64(i)<<1 | 1)
		return
	}
	w.uint(uint64(len(s)) << 1)
	w.b = append(w.b, s...)
}

func (w *recWriter) bytes(p []byte) {
	if p == nil {
		w.uint(0)
		return
	}
	w.uint(uint64(len(p)) + 1)
	w.b = append(w.b, p...)
}

// time writes 0 for the zero time, 1 for base itself, else 2 and the offset from base.
func (w *recWriter) time(t, base time.Time) {
	switch {
	case t.IsZero():
		w.uint(0)
	case t.Equal(base):
		w.uint(1)
	default:
		w.uint(2)
		w.int(t.UnixNano() - base.UnixNano())
	}
}

// encodeRecord writes m as a recordV2 of minLen bytes, or as short as it can be
// when its fields take more, with room bytes of room at least.
func encodeRecord(m *Message, minLen, room int) []byte {
	return appendRecord(nil, m, minLen, room)
}

// appendRecord is encodeRecord appending to b, with room made for the whole
// record at once.
func appendRecord(b []byte, m *Message, minLen, room int) []byte {
	start := len(b)
	w := &recWriter{b: slices.Grow(b, max(recordSize(m)+room, minLen+16))}
	w.b = append(w.b, recordV2)
	w.str(m.ID)
	w.str(string(m.State))
	w.str(m.From)
	w.str(m.To)
	w.str(m.FromFull)
	w.str(m.ContentType)
	w.bytes(m.Body)
	w.str(string(m.BodySource))
	w.str(m.Profile)
	w.str(m.Context)
	w.str(m.Hostname)
	w.str(m.CoreUUID)
	w.uint(m.EventSeq)
	w.int(m.EventTime)
	// Received is the base of every other time; the zero time has no UnixNano.
	if m.Received.IsZero() {
		w.uint(0)
	} else {
		w.uint(1)
		w.int(m.Received.UnixNano())
	}
	base := m.Received
	w.int(m.Order.Epoch)
	w.uint(m.Order.Seq)
	w.str(m.Reason)
	w.time(m.Updated, base)
	w.time(m.Expires, base)
	w.uint(uint64(len(m.Notices)))
	for _, n := range m.Notices {
		w.str(n)
	}
	var flags uint64
	if m.BodyFinal {
		flags |= 1
	}
	if m.BodyFallback {
		flags |= 2
	}
	w.uint(flags)
	w.int(int64(m.Attempts))
	w.int(int64(m.Refusals))
	w.str(m.InFlight)
	w.time(m.LastAttempt, base)
	w.str(m.LastResult)
	w.int(int64(m.UncertainResends))
	w.time(m.Delivered, base)
	w.int(int64(m.Events))
	w.uint(uint64(len(m.History)))
	for _, h := range m.History {
		w.time(h.At, base)
		w.str(h.Kind)
		w.str(string(h.State))
		// The detail of a state change is usually the reason just set.
		if h.Detail != "" && h.Detail == m.Reason {
			w.uint(1)
		} else {
			w.uint(0)
			w.str(h.Detail)
		}
		w.str(h.Device)
	}
	w.uint(uint64(len(m.Devices)))
	for _, c := range m.Devices {
		w.str(c.Key)
		w.str(string(c.State))
		w.int(int64(c.Attempts))
		w.int(int64(c.Refusals))
		w.str(c.InFlight)
		w.time(c.LastAttempt, base)
		w.str(c.LastResult)
		w.int(int64(c.UncertainResends))
		w.time(c.Delivered, base)
	}
	// The room: the largest p whose length and bytes fit in what is left
	// (a length of 128 or more takes two bytes, so one byte may stay unused).
	n := len(w.b) - start
	p := max(minLen-n-1, 0)
	for p > 0 && uvarintLen(uint64(p))+p > minLen-n {
		p--
	}
	p = max(p, room)
	w.uint(uint64(p))
	w.b = append(w.b, make([]byte, p)...)
	return w.b
}

// recordSize is about the bytes m's record takes without its room: its
// strings and body, and a few bytes for each number and length.
func recordSize(m *Message) int {
	n := 128 + len(m.ID) + len(m.From) + len(m.To) + len(m.FromFull) + len(m.ContentType) + len(m.Body) +
		len(m.Profile) + len(m.Context) + len(m.Hostname) + len(m.CoreUUID) + len(m.Reason) + len(m.InFlight) +
		len(m.LastResult)
	for _, s := range m.Notices {
		n += 2 + len(s)
	}
	for _, h := range m.History {
		n += 24 + len(h.Kind) + len(h.Detail) + len(h.Device)
	}
	for _, c := range m.Devices {
		n += 48 + len(c.Key) + len(c.InFlight) + len(c.LastResult)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

var errRecord = errors.New("damaged message record")

type recReader struct {
	b   []byte
	err error
}

func (r *recReader) fail() {
	if r.err == nil {
		r.err = errRecord
	}
	r.b = nil
}

func (r *recReader) uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) take(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *recReader) str() string {
	v := r.uint()
	if v&1 == 1 {
		if i := v >> 1; i < uint64(len(recordWords)) {
			return recordWords[i]
		}
		r.fail()
		return ""
	}
	return string(r.take(v >> 1))
}

func (r *recReader) bytes() []byte {
	v := r.uint()
	if v == 0 {
		return nil
	}
	return append([]byte{}, r.take(v-1)...)
}

func (r *recReader) time(base time.Time) time.Time {
	switch r.uint() {
	case 0:
		return time.Time{}
	case 1:
		return base
	case 2:
		return time.Unix(0, base.UnixNano()+r.int()).UTC()
	}
	r.fail()
	return time.Time{}
}

func (r *recReader) count() int {
	v := r.uint()
	if v > maxRecordList || v > uint64(len(r.b)) { // every element takes a byte at least
		r.fail()
		return 0
	}
	return int(v)
}

// skipStr passes over a string.
func (r *recReader) skipStr() {
	if v := r.uint(); v&1 == 0 {
		r.take(v >> 1)
	}
}

// peekQueued reads of a record only what a new message's queue entry needs
// (ID, To, CoreUUID, Order), allocating nothing else: the journal's applier
// stores the record as it is.
func peekQueued(b []byte) (*Message, error) {
	if len(b) == 0 || b[0] != recordV1 && b[0] != recordV2 {
		return nil, fmt.Errorf("%w: unknown record version", errRecord)
	}
	r := &recReader{b: b[1:]}
	m := new(Message)
	m.ID = r.str()
	r.skipStr() // State
	r.skipStr() // From
	m.To = r.str()
	r.skipStr() // FromFull
	r.skipStr() // ContentType
	if v := r.uint(); v > 0 {
		r.take(v - 1) // Body
	}
	r.skipStr() // BodySource
	r.skipStr() // Profile
	r.skipStr() // Context
	r.skipStr() // Hostname
	m.CoreUUID = r.str()
	r.uint() // EventSeq
	r.int()  // EventTime
	if r.uint() == 1 {
		r.int() // Received
	}
	m.Order.Epoch = r.int()
	m.Order.Seq = r.uint()
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

func decodeRecord(b []byte) (*Message, error) {
	if len(b) == 0 || b[0] != recordV1 && b[0] != recordV2 {
		return nil, fmt.Errorf("%w: unknown record version", errRecord)
	}
	r := &recReader{b: b[1:]}
	m := new(Message)
	m.ID = r.str()
	m.State = State(r.str())
	m.From = r.str()
	m.To = r.str()
	m.FromFull = r.str()
	m.ContentType = r.str()
	m.Body = r.bytes()
	m.BodySource = BodySource(r.str())
	m.Profile = r.str()
	m.Context = r.str()
	m.Hostname = r.str()
	m.CoreUUID = r.str()
	m.EventSeq = r.uint()
	m.EventTime = r.int()
	if r.uint() == 1 {
		m.Received = time.Unix(0, r.int()).UTC()
	}
	base := m.Received
	m.Order.Epoch = r.int()
	m.Order.Seq = r.uint()
	m.Reason = r.str()
	m.Updated = r.time(base)
	m.Expires = r.time(base)
	if n := r.count(); n > 0 {
		m.Notices = make([]string, n)
		for i := range m.Notices {
			m.Notices[i] = r.str()
		}
	}
	flags := r.uint()
	m.BodyFinal, m.BodyFallback = flags&1 != 0, flags&2 != 0
	m.Attempts = int(r.int())
	m.Refusals = int(r.int())
	m.InFlight = r.str()
	m.LastAttempt = r.time(base)
	m.LastResult = r.str()
	m.UncertainResends = int(r.int())
	m.Delivered = r.time(base)
	m.Events = int(r.int())
	if n := r.count(); n > 0 {
		m.History = make([]HistoryEntry, n)
		for i := range m.History {
			h := &m.History[i]
			h.At = r.time(base)
			h.Kind = r.str()
			h.State = State(r.str())
			if r.uint() == 1 {
				h.Detail = m.Reason
			} else {
				h.Detail = r.str()
			}
			h.Device = r.str()
		}
	}
	if n := r.count(); n > 0 {
		m.Devices = make([]DeviceCopy, n)
		for i := range m.Devices {
			c := &m.Devices[i]
			c.Key = r.str()
			c.State = State(r.str())
			c.Attempts = int(r.int())
			c.Refusals = int(r.int())
			c.InFlight = r.str()
			c.LastAttempt = r.time(base)
			c.LastResult = r.str()
			c.UncertainResends = int(r.int())
			c.Delivered = r.time(base)
		}
	}
	if b[0] == recordV2 {
		r.take(r.uint()) // the room
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last field", errRecord, len(r.b))
	}
	return m, nil
}

// peekRecordState reads the state of a compact record without decoding the rest.
func peekRecordState(b []byte) (State, bool) {
	if len(b) == 0 || b[0] != recordV1 && b[0] != recordV2 {
		return "", false
	}
	r := &recReader{b: b[1:]}
	r.str() // id
	st := State(r.str())
	return st, r.err == nil
}
