package fsemu

import (
	"errors"
	"strings"
)

// Outcome is what FreeSWITCH does with one inbound MESSAGE after the
// chatplan step (mod_sms chat_send, then do_chat_send in
// switch_loadable_module.c).
type Outcome struct {
	// NotFound: no chatplan action ran (a "not found" answer, the static
	// fallback, a missing context, no matching extension, or the chatplan
	// skipped). The message is then delivered directly.
	NotFound bool
	// Final: actions ran and left final_delivery true, so the core's direct
	// delivery of the original is skipped.
	Final bool
	// DirectDeliveries counts the MESSAGEs sent to the recipient: one per
	// `send` copy plus the original unless Final (a `reply` goes to the
	// sender and is not counted). not found 1, send 2, send+final 1,
	// final 0, reply 1.
	DirectDeliveries int
	Replies          []string          // text of each `reply`, to the sender
	Vars             map[string]string // headers the chatplan `set` (deleted ones removed)
	Event            *Event            // the event after the chatplan
	Sent             []*Event          // the copies `send` queued
	ReplyEvents      []*Event          // the reply events `reply` queued
	Fallback         bool              // the static chatplan was used instead of doc
	Reason           string            // why NotFound or Fallback, if so
	Log              []string          // what FreeSWITCH would log at WARNING/ERROR/INFO
}

// ApplyChatplan runs doc, a gateway answer, against ev the way mod_sms does
// (chatplan_hunt, parse_exten, then the collected apps in order). ev is the
// event as posted to xml_curl (max_forwards already set) and is not changed;
// Outcome.Event is the result. A document FreeSWITCH cannot use (unparsable,
// "not found", no chatplan section; nil included) gives the static chatplan
// of sipsilo's shipped config, which matches nothing: direct delivery.
//
// Not emulated: time-of-day condition attributes (ignored), global
// variables (expand to ""), APIs other than url_encode and md5, `fire` and `system`
// (logged only).
func ApplyChatplan(doc []byte, ev *Event) (*Outcome, error) {
	if ev == nil {
		return nil, errors.New("fsemu: nil event")
	}
	r := &run{ev: ev.Clone(), out: &Outcome{Vars: map[string]string{}}}
	r.out.Event = r.ev
	// do_chat_send runs the chatplan only for a fresh, non-global message.
	if switchTrue(r.ev.Get("replying")) || strings.Contains(strings.ToLower(r.ev.Get("proto")), "global") ||
		switchTrue(r.ev.Get("skip_global_process")) {
		return r.finish(false, "chatplan skipped (replying, global proto or skip_global_process)"), nil
	}
	v := judgeDoc(doc)
	if v.section == nil {
		r.out.Fallback = true
		r.log("static chatplan used: " + v.reason)
		return r.finish(false, v.reason+"; static chatplan has no matching context"), nil
	}
	actions, reason := r.hunt(v.section)
	if len(actions) == 0 {
		r.log("SMS chatplan no actions found")
		return r.finish(false, reason), nil
	}
	for _, a := range actions {
		if !r.exec(a.app, a.data) {
			break // any failing app ends the list; the status is still SUCCESS
		}
	}
	return r.finish(true, ""), nil
}

// action is one collected app; data "__undef" stands for none, as in C.
type action struct{ app, data string }

// run is one chatplan pass over a working copy of the event.
type run struct {
	ev     *Event
	out    *Outcome
	noExec bool // EF_NO_CHAT_EXEC, set by stop and final
}

func (r *run) log(s string) { r.out.Log = append(r.out.Log, s) }

// finish applies do_chat_send's delivery rule. ran is mod_sms returning
// SUCCESS (some action ran) rather than BREAK.
func (r *run) finish(ran bool, reason string) *Outcome {
	o := r.out
	o.NotFound, o.Reason = !ran, reason
	o.Final = ran && switchTrue(r.ev.Get("final_delivery"))
	if !o.Final && deliverable(r.ev.Get("dest_proto")) {
		o.DirectDeliveries++
	}
	return o
}

// deliverable: the emulated switch has one chat interface, sofia's "sip";
// a dest_proto containing GLOBAL is never delivered directly.
func deliverable(proto string) bool {
	return strings.EqualFold(proto, "sip")
}

// hunt is chatplan_hunt: context from the "context" header (else
// "default"), falling back to a context named "global", then extensions in
// order until one proceeds without continue="true".
func (r *run) hunt(section *xnode) ([]action, string) {
	ctxName, ok := r.ev.Value("context")
	if !ok {
		ctxName = "default"
	}
	r.log("Processing text message " + r.ev.Get("from_user") + "->" + r.ev.Get("to_user") + " in context " + ctxName)
	xctx := section.findChild("context", "name", ctxName)
	if xctx == nil {
		xctx = section.findChild("context", "name", "global")
	}
	if xctx == nil {
		r.log("Context " + ctxName + " not found")
		return nil, "context " + ctxName + " not found"
	}
	var actions []action
	for _, x := range xctx.childrenNamed("extension") {
		proceed := r.parseExten(x, &actions)
		if cont, _ := x.attr("continue"); proceed && !switchTrue(cont) {
			break
		}
	}
	return actions, "no extension matched"
}

// parseExten is mod_sms parse_exten. Its return value is the last
// condition's regex match count (or 1 when anti-actions were added); an
// absolute condition (no field) leaves it alone, as in C.
func (r *run) parseExten(x *xnode, actions *[]action) bool {
	proceed := false
	for _, c := range x.childrenNamed("condition") {
		if len(c.childrenNamed("condition")) > 0 {
			r.log("Nested conditions are not allowed!")
			return true
		}
		expr := c.attrSoft("expression")
		if e := c.childrenNamed("expression"); len(e) > 0 {
			expr = e[0].text.String()
		}
		expr = Expand(r.ev, expr)
		field, hasField := c.attr("field")
		matched, fieldData := !hasField, ""
		var m *reMatch
		if hasField {
			if strings.Contains(field, "$") {
				fieldData = Expand(r.ev, field)
			} else if v, ok := r.ev.Value(field); ok {
				fieldData = v
			} else if field == "_body" {
				fieldData = r.ev.Body
			}
			m = regexPerform(fieldData, expr)
			matched, proceed = m != nil, m != nil
		}
		subst := hasField && matched && strings.Contains(expr, "(")
		if subst {
			for g := 0; g < m.count; g++ { // DP_MATCH: unique header, last capture wins
				if v, ok := m.group(g); ok {
					r.ev.Set("DP_MATCH", v)
				}
			}
		}
		kind := "action"
		if !matched {
			kind = "anti-action"
		}
		for _, a := range c.childrenNamed(kind) {
			data := a.text.String()
			if data == "" {
				data = a.attrSoft("data")
			}
			if subst {
				data = substitute(data, m, (len(data)+len(fieldData)+10)*m.count)
			}
			n := 1
			if l, ok := a.attr("loop"); ok {
				n = atoi(l)
			}
			for ; n > 0; n-- {
				if switchTrue(a.attrSoft("inline")) {
					r.exec(a.attrSoft("application"), data)
				} else {
					if data == "" {
						data = "__undef"
					}
					*actions = append(*actions, action{a.attrSoft("application"), data})
				}
			}
			if !matched {
				proceed = true
			}
		}
		brk := strings.ToLower(c.attrSoft("break"))
		if (matched && brk == "on-true") || (!matched && (brk == "on-false" || !isBreakWord(brk))) || brk == "always" {
			break
		}
	}
	return proceed
}

// isBreakWord tells a known break= value; anything else means on-false.
func isBreakWord(s string) bool {
	return s == "on-true" || s == "on-false" || s == "always" || s == "never"
}
