package kv

import (
	"time"
	"unicode/utf8"
)

// MessageView is a message as `sipsilo inspect --json` and the admin API show it.
// The stored record keeps the body as bytes (JSON base64), which no person or
// script wants to read: here it is text in body when it is valid UTF-8, and base64
// in body_base64 otherwise (so a binary body still comes back byte for byte);
// body_len is its length in bytes either way. Redaction clears both and sets
// body_hash.
//
// The record is embedded so that a field added to Message shows up here too; the
// fields below replace the record's own of the same JSON name.
type MessageView struct {
	Message
	Body       *string   `json:"body,omitempty"`
	BodyBase64 []byte    `json:"body_base64,omitempty"`
	BodyLen    int       `json:"body_len"`
	BodyHash   string    `json:"body_hash,omitempty"`
	Order      orderView `json:"order"`
	// Age is how long ago the message was received, when the view was made.
	Age float64 `json:"age_s"`
}

type orderView struct {
	Epoch int64  `json:"epoch_ns"`
	Seq   uint64 `json:"seq"`
}

// ViewOf makes m's view at time now. The view shares nothing mutable with m.
func ViewOf(m *Message, now time.Time) MessageView {
	v := MessageView{Message: *m, BodyLen: len(m.Body), Order: orderView{m.Order.Epoch, m.Order.Seq}}
	v.Message.Body = nil
	v.Message.History = append([]HistoryEntry(nil), m.History...)
	v.Message.Devices = append([]DeviceCopy(nil), m.Devices...)
	if utf8.Valid(m.Body) {
		b := string(m.Body)
		v.Body = &b
	} else {
		v.BodyBase64 = append([]byte(nil), m.Body...)
	}
	if !m.Received.IsZero() {
		v.Age = ageSeconds(now, m.Received)
	}
	return v
}

// BodyBytes is the body the view carries (nil once redacted).
func (v *MessageView) BodyBytes() []byte {
	if v.Body != nil {
		return []byte(*v.Body)
	}
	return v.BodyBase64
}
