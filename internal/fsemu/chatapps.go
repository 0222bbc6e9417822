package fsemu

import "strings"

// chatApps are the chat applications mod_sms registers (mod_sms_load).
var chatApps = map[string]bool{
	"info": true, "reply": true, "stop": true, "set": true, "unset": true,
	"send": true, "fire": true, "system": true, "final": true,
}

// exec is switch_core_execute_chat_app plus the mod_sms app. It returns
// false where the C returns a status that ends chat_send's loop: an unknown
// app, any app after stop/final, and stop itself. Data is expanded against
// the event as it is at that moment, never earlier.
func (r *run) exec(app, data string) bool {
	if !chatApps[app] {
		r.log("Invalid chat application interface [" + app + "]!")
		return false
	}
	if r.noExec {
		r.log("Message is not allowed to execute apps")
		return false
	}
	hasData := data != "__undef"
	if hasData {
		data = Expand(r.ev, data)
	}
	switch app {
	case "set":
		if hasData {
			name, val, _ := strings.Cut(data, "=")
			r.ev.Set(name, val) // an empty value deletes
			if val == "" {
				delete(r.out.Vars, name)
			} else {
				r.out.Vars[name] = val
			}
		}
	case "unset":
		if hasData {
			name, val, _ := strings.Cut(data, "=")
			r.ev.DelValue(name, val)
			delete(r.out.Vars, name)
		}
	case "final":
		r.ev.Set("final_delivery", "true")
		r.noExec = true
	case "stop":
		r.noExec = true
		return false
	case "send":
		proto := data
		if !hasData || proto == "" {
			proto = r.ev.Get("dest_proto")
		}
		r.ev.Set("skip_global_process", "true")
		cp := r.ev.Clone() // switch_core_chat_send: a dup with dest_proto set
		if proto != "" {
			cp.Set("dest_proto", proto)
		}
		r.out.Sent = append(r.out.Sent, cp)
		if deliverable(cp.Get("dest_proto")) {
			r.out.DirectDeliveries++
		}
	case "reply":
		proto, ok := r.ev.Value("proto")
		if !ok {
			break
		}
		rep := replyEvent(r.ev)
		text := ""
		if hasData && data != "" {
			text = data
		}
		rep.Body = text
		rep.Set("dest_proto", proto) // switch_core_chat_deliver(proto, ...)
		r.out.ReplyEvents = append(r.out.ReplyEvents, rep)
		r.out.Replies = append(r.out.Replies, text)
	case "info":
		r.log("CHANNEL_DATA (info): " + strings.TrimSpace(data))
	case "fire", "system":
		r.log(app + " not emulated: " + data)
	}
	return true
}

// replyEvent is switch_ivr_create_message_reply: switch_event_dup_reply
// (from_* and to_* swapped in place, from and to swapped, replying=true,
// orig_body=<body>) with proto set to GLOBAL_SMS. The body is not copied.
func replyEvent(ev *Event) *Event {
	rep := &Event{}
	for _, h := range ev.Headers {
		name := h.Name
		switch {
		case len(name) >= 5 && strings.EqualFold(name[:5], "from_"):
			name = "to_" + name[5:]
		case len(name) >= 3 && strings.EqualFold(name[:3], "to_"):
			name = "from_" + name[3:]
		case strings.EqualFold(name, "to"):
			name = "from"
		case strings.EqualFold(name, "from"):
			name = "to"
		}
		rep.Set(name, h.Value)
	}
	rep.Set("replying", "true")
	if ev.Body != "" {
		rep.Set("orig_body", ev.Body)
	}
	rep.Set("proto", "GLOBAL_SMS")
	return rep
}
