package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sipsilo/sipsilo/kv"
	"github.com/sipsilo/sipsilo/presence"
)

// inspectOut writes one view as JSON or as tables, redacted or not.
type inspectOut struct {
	w    io.Writer
	json bool
	red  *redactor // nil: nothing hidden
	now  time.Time
}

// emit writes v as indented JSON, or calls table.
func (o *inspectOut) emit(v any, table func(w io.Writer) error) error {
	if !o.json {
		return table(o.w)
	}
	enc := json.NewEncoder(o.w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // a From header's <sip:…> stays readable
	return enc.Encode(v)
}

func inspectView(s *kv.Store, o inspectOpts, pos []string, out *inspectOut) error {
	switch pos[0] {
	case "stats":
		return inspectStats(s, o, out)
	case "queue":
		if len(pos) == 1 {
			return inspectRecipients(s, o, out)
		}
		return inspectQueue(s, pos[1], o, out)
	case "presence":
		if len(pos) == 1 {
			return inspectPresenceAll(s, o, out)
		}
		return inspectPresenceOne(s, pos[1], out)
	case "message":
		return inspectMessage(s, pos[1], out)
	case "dead":
		return inspectByState(s, o, out)
	case "outbox":
		return inspectOutbox(s, o, out)
	}
	return fmt.Errorf("inspect: unknown view %q", pos[0])
}

// pageError names the flag when the cursor was the problem.
func pageError(err error) error {
	if errors.Is(err, kv.ErrBadCursor) {
		return fmt.Errorf("inspect: --after: %w", err)
	}
	return fmt.Errorf("inspect: %w", err)
}

func inspectStats(s *kv.Store, o inspectOpts, out *inspectOut) error {
	sum, err := s.Summary()
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if out.red != nil {
		out.red.summary(&sum)
	}
	return out.emit(sum, func(w io.Writer) error { return statsTable(w, s.Path(), sum, o.limit) })
}

// inspectRecipients is `queue` without an address: every recipient's depth.
func inspectRecipients(s *kv.Store, o inspectOpts, out *inspectOut) error {
	sum, err := s.Summary()
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if out.red != nil {
		out.red.summary(&sum)
	}
	v := struct {
		Recipients []kv.RecipientQueue `json:"recipients"`
	}{sum.Recipients}
	return out.emit(v, func(w io.Writer) error { return recipientsTable(w, sum.Recipients, o.limit) })
}

func (o *inspectOut) messages(p kv.Page[*kv.Message]) kv.Page[kv.MessageView] {
	v := kv.Page[kv.MessageView]{Items: make([]kv.MessageView, 0, len(p.Items)), Next: p.Next}
	for _, m := range p.Items {
		mv := kv.ViewOf(m, o.now)
		if o.red != nil {
			o.red.message(&mv)
		}
		v.Items = append(v.Items, mv)
	}
	return v
}

func inspectQueue(s *kv.Store, aor string, o inspectOpts, out *inspectOut) error {
	p, err := s.QueuePage(aor, o.after, o.limit)
	if err != nil {
		return pageError(err)
	}
	v := out.messages(p)
	return out.emit(v, func(w io.Writer) error { return queueTable(w, v) })
}

func inspectByState(s *kv.Store, o inspectOpts, out *inspectOut) error {
	p, err := s.MessagePage(kv.State(o.state), o.after, o.limit)
	if err != nil {
		return pageError(err)
	}
	v := out.messages(p)
	return out.emit(v, func(w io.Writer) error { return stateTable(w, o.state, v) })
}

func inspectMessage(s *kv.Store, id string, out *inspectOut) error {
	m, err := s.Get(id)
	if errors.Is(err, kv.ErrNotFound) {
		return fmt.Errorf("inspect: no message %q in %s", id, s.Path())
	}
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	v := kv.ViewOf(m, out.now)
	if out.red != nil {
		out.red.message(&v)
	}
	return out.emit(v, func(w io.Writer) error { return messageTable(w, v) })
}

// presenceItem is one persisted record; a record presence cannot read is listed
// with the reason rather than hidden.
type presenceItem struct {
	presence.View
	Error string `json:"error,omitempty"`
}

func (o *inspectOut) presenceItem(aor string, rec []byte) presenceItem {
	st, err := presence.DecodeRecord(aor, rec, o.now)
	it := presenceItem{View: presence.ViewOf(st, o.now)}
	if err != nil {
		it = presenceItem{View: presence.View{AOR: aor, At: o.now.UTC(), Registrations: []presence.RegistrationView{}, Devices: []presence.DeviceView{}},
			Error: "unreadable record: " + err.Error()}
	}
	if o.red != nil {
		o.red.presence(&it.View)
		it.Error = o.red.text(it.Error, aor)
	}
	return it
}

func inspectPresenceAll(s *kv.Store, o inspectOpts, out *inspectOut) error {
	p, err := s.ReachPage(o.after, o.limit)
	if err != nil {
		return pageError(err)
	}
	v := kv.Page[presenceItem]{Items: make([]presenceItem, 0, len(p.Items)), Next: p.Next}
	for _, r := range p.Items {
		v.Items = append(v.Items, out.presenceItem(r.AOR, r.Record))
	}
	if out.red != nil && v.Next != "" {
		// The cursor is an address; redacted, it only says that more follow.
		v.Next = out.red.aor(v.Next)
	}
	return out.emit(v, func(w io.Writer) error { return presenceTable(w, v) })
}

func inspectPresenceOne(s *kv.Store, aor string, out *inspectOut) error {
	rec, err := s.GetReach(aor)
	if errors.Is(err, kv.ErrNoReach) {
		return errors.New("inspect: no presence record for this address (presence keeps records only for AORs with registrations)")
	}
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	v := out.presenceItem(aor, rec)
	return out.emit(v, func(w io.Writer) error { return presenceOneTable(w, v) })
}

// outboxView is one outbox record for inspection.
type outboxView struct {
	Seq      uint64         `json:"seq"`
	ID       string         `json:"id"`
	EventSeq int            `json:"event_seq"`
	Kind     string         `json:"kind"`
	At       time.Time      `json:"at"`
	Detail   string         `json:"detail,omitempty"`
	Message  kv.MessageView `json:"message"`
}

func inspectOutbox(s *kv.Store, o inspectOpts, out *inspectOut) error {
	p, err := s.OutboxPage(o.after, o.limit)
	if err != nil {
		return pageError(err)
	}
	v := kv.Page[outboxView]{Items: make([]outboxView, 0, len(p.Items)), Next: p.Next}
	for _, r := range p.Items {
		mv := kv.ViewOf(r.Message, out.now)
		if r.Message.Body == nil {
			// Only received and body records carry the body (kv.OutboxRecord).
			mv.Body = nil
		}
		ov := outboxView{Seq: r.Seq, ID: r.MsgID, EventSeq: r.EventSeq, Kind: r.Kind, At: r.At, Detail: r.Detail, Message: mv}
		if out.red != nil {
			out.red.message(&ov.Message)
			ov.Detail = out.red.text(ov.Detail, r.Message.From, r.Message.To)
		}
		v.Items = append(v.Items, ov)
	}
	return out.emit(v, func(w io.Writer) error { return outboxTable(w, v) })
}
