package kv

import (
	"encoding/json"
	"time"
)

// State is where a message is in its life.
type State string

const (
	// StateQueued: sipsilo owns the message and will deliver it.
	StateQueued State = "queued"
	// StateReleased: sipsilo stored the message but its chatplan answer did not reach
	// FreeSWITCH in time, so FreeSWITCH delivered it itself (docs/decisions.md §5).
	// Kept for the record, never delivered by sipsilo.
	StateReleased State = "released"
	// StateDelivered: the recipient's device answered 2xx.
	StateDelivered State = "delivered"
	// StateDead: the recipient is alive but kept refusing the message (dead letter).
	StateDead State = "dead"
	// StateNoBody: the chatplan request carried no body and the exact copy from the
	// ESL MESSAGE event never came: there is nothing to deliver, and it is recorded.
	StateNoBody State = "no_body"
	// StateExpired: the message outlived its TTL undelivered (kv/policy.go). Kept
	// for the record, never delivered.
	StateExpired State = "expired"
	// StatePurged: an operator took the message out of its queue (admin API).
	// Kept for the record, never delivered afterwards.
	StatePurged State = "purged"
)

// BodySource says where the stored body came from.
type BodySource string

const (
	// BodyAwaiting: the chatplan request had no body parameter; the exact body comes
	// from the post-chatplan ESL MESSAGE event.
	BodyAwaiting BodySource = ""
	// BodyQuery: the body is the dynamic-URL query copy, exact except for literal %XX
	// text and leading/trailing spaces (docs/decisions.md §4).
	BodyQuery BodySource = "query"
	// BodyQueryExact: the body is the dynamic-URL copy checked against the MD5
	// FreeSWITCH sent beside it, so it is exact at intake (dialplan.DecodeText).
	// The message still waits for the ESL event, which is a cross-check and keeps
	// a burst in order, or for the grace period; then this copy stands.
	BodyQueryExact BodySource = "query_exact"
	// BodyESL: the body is the exact copy from the ESL MESSAGE event.
	BodyESL BodySource = "esl"
	// BodyAPI: the message was injected through the admin API with its body; no
	// ESL copy will come.
	BodyAPI BodySource = "api"
)

// Message is one stored SIP MESSAGE. Body is []byte, not string, because it must come
// back byte for byte even when it is not valid UTF-8 (encoding/json would replace
// invalid sequences in a string; a []byte round-trips as base64).
type Message struct {
	ID          string     `json:"id"`
	State       State      `json:"state"`
	From        string     `json:"from"`      // sender AOR, user@host
	To          string     `json:"to"`        // recipient AOR, user@host
	FromFull    string     `json:"from_full"` // the sender's From header, tag included
	ContentType string     `json:"content_type"`
	Body        []byte     `json:"body"`
	BodySource  BodySource `json:"body_source"`
	Profile     string     `json:"sip_profile"`
	Context     string     `json:"context"`
	Hostname    string     `json:"fs_hostname"`
	CoreUUID    string     `json:"core_uuid"`
	EventSeq    uint64     `json:"event_sequence"`
	EventTime   int64      `json:"event_timestamp_us"` // FreeSWITCH's Event-Date-Timestamp
	Received    time.Time  `json:"received"`
	Order       OrderKey   `json:"order"`
	Reason      string     `json:"reason,omitempty"` // why the last state change happened
	Updated     time.Time  `json:"updated"`
	// Expires is when the message is given up undelivered: intake time plus the
	// store's TTL, or earlier when the sender asked for less (kv/policy.go).
	Expires time.Time `json:"expires,omitzero"`
	// Notices are the kinds of sender notices already sent for the message
	// (NoticeStored, NoticeExpired), so that a restart does not repeat one.
	Notices []string `json:"notices,omitempty"`

	// BodyFinal is set once the body can be delivered: the ESL copy arrived, or
	// the grace period for it passed and the query copy stands (BodyFallback; on a
	// BodyQueryExact body that copy is exact).
	BodyFinal    bool `json:"body_final,omitempty"`
	BodyFallback bool `json:"body_fallback,omitempty"`

	// Delivery attempts. InFlight is the attempt id of a send that was started and
	// whose result is not yet recorded; found set after a restart, it means the send
	// may have reached the device, so a new one may duplicate it (docs/decisions.md
	// §1).
	Attempts         int       `json:"attempts,omitempty"`
	Refusals         int       `json:"refusals,omitempty"` // errors while the recipient was alive
	InFlight         string    `json:"in_flight,omitempty"`
	LastAttempt      time.Time `json:"last_attempt,omitzero"`
	LastResult       string    `json:"last_result,omitempty"`
	UncertainResends int       `json:"uncertain_resends,omitempty"` // resends after an attempt of unknown outcome (crash, lost ESL)
	Delivered        time.Time `json:"delivered,omitzero"`
	Events           int       `json:"events,omitempty"` // outbox records made for it (OutboxRecord.EventSeq)

	// History is the message's own record of its state changes, kept in the message
	// so that `sipsilo inspect` and the admin API can show it without MySQL. It is
	// capped at maxHistory entries: the first (received) and the latest.
	History []HistoryEntry `json:"history,omitempty"`

	// Devices are the per-device copies of a message received for a recipient
	// with two or more target devices (kv/copies.go, docs/decisions.md §29);
	// absent otherwise. The message stays queued until every copy is final.
	Devices []DeviceCopy `json:"devices,omitempty"`
}

// HistoryEntry is one state change of a message (the same kinds as the outbox).
type HistoryEntry struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	State  State     `json:"state"`
	Detail string    `json:"detail,omitempty"`
	Device string    `json:"device,omitempty"` // the device whose copy changed; empty: the message
}

// maxHistory bounds Message.History, so a message refused a thousand times does
// not grow without end.
const maxHistory = 32

// addHistory appends one entry, dropping the oldest after the first when full.
func (m *Message) addHistory(at time.Time, kind, detail string) {
	m.addDeviceHistory(at, kind, detail, "")
}

// addDeviceHistory is addHistory for a change of one device's copy.
func (m *Message) addDeviceHistory(at time.Time, kind, detail, device string) {
	e := HistoryEntry{At: at, Kind: kind, State: m.State, Detail: detail, Device: device}
	if len(m.History) >= maxHistory {
		m.History = append(m.History[:1], m.History[len(m.History)-maxHistory+2:]...)
	}
	m.History = append(m.History, e)
}

// encodeMessage writes the compact record (kv/record.go), with room to close
// the wait for the body in place when the message is queued and awaits it.
func encodeMessage(m *Message) ([]byte, error) {
	if m.State == StateQueued && !m.BodyFinal {
		return encodeRecord(m, 0, recordRoom), nil
	}
	return encodeRecord(m, 0, 0), nil
}

// encodeNewMessage is a new message's journal record (recEnqueue, then what
// encodeMessage writes).
func encodeNewMessage(m *Message) []byte {
	room := 0
	if m.State == StateQueued && !m.BodyFinal {
		room = recordRoom
	}
	return appendRecord(append(make([]byte, 0, 1+recordSize(m)+room), recEnqueue), m, 0, room)
}

// reencodeMessage writes m again in place of its record old, no shorter than
// old: a record that does not grow leaves its page as it was (kv/record.go).
func reencodeMessage(m *Message, old []byte) ([]byte, error) {
	return encodeRecord(m, len(old), 0), nil
}

// decodeMessage reads a compact record or a JSON one written by an earlier
// version (docs/decisions.md §35).
func decodeMessage(b []byte) (*Message, error) {
	if len(b) > 0 && b[0] != '{' {
		return decodeRecord(b)
	}
	m := new(Message)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}
