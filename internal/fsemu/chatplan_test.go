package fsemu

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestApplyChatplanCaptures applies each captured answer to its captured
// event and checks the delivery counts seen on FreeSWITCH (docs/decisions.md §9)
// (02 not found: delivered; 04 reply: reply + original; 05 send: twice;
// 05b send+final: once; 05c final: never) and, where ESL recorded them, the
// post-chatplan MESSAGE events header for header.
func TestApplyChatplanCaptures(t *testing.T) {
	type want struct {
		dd       int
		notFound bool
		final    bool
		replies  []string
		vars     map[string]string
	}
	notFound := want{dd: 1, notFound: true, vars: map[string]string{}}
	wants := map[string]want{
		"01_s00_subscribe_order_notfound":    notFound,
		"02_s02_message_online_notfound":     notFound,
		"03_s03_message_offline_notfound":    notFound,
		"04_s04_chatplan_reply":              {dd: 1, replies: []string{"auto-reply from chatplan: you said [please reply]"}, vars: map[string]string{}},
		"05_s05_chatplan_send":               {dd: 2, vars: map[string]string{"X-Fixture": "via-chatplan"}},
		"06_s05b_chatplan_send_final":        {dd: 1, final: true, vars: map[string]string{}},
		"07_s05c_chatplan_final_only":        {dd: 0, final: true, vars: map[string]string{}},
		"08_s06_api_registered_notfound":     notFound,
		"09_s09_unreachable_silent_notfound": notFound,
		"10_dynamic_url_body_final":          {dd: 0, final: true, vars: map[string]string{}},
	}
	for _, fx := range loadFixtures(t) {
		w, ok := wants[fx.name]
		if !ok {
			t.Fatalf("no expectation for %s", fx.name)
		}
		ev := eventFor(t, fx)
		before := ev.Clone()
		out, err := ApplyChatplan(fx.answer, ev)
		if err != nil {
			t.Fatal(err)
		}
		if out.DirectDeliveries != w.dd || out.NotFound != w.notFound || out.Final != w.final || out.Fallback != w.notFound ||
			!reflect.DeepEqual(out.Replies, w.replies) || !reflect.DeepEqual(out.Vars, w.vars) {
			t.Errorf("%s: got dd=%d notFound=%v final=%v fallback=%v replies=%q vars=%v (%s)", fx.name,
				out.DirectDeliveries, out.NotFound, out.Final, out.Fallback, out.Replies, out.Vars, out.Reason)
		}
		if !reflect.DeepEqual(ev, before) {
			t.Errorf("%s: ApplyChatplan changed its input", fx.name)
		}
		if fx.esl == nil {
			continue
		}
		// Every event do_chat_send fires: the original first, then the
		// copies and replies it queued, each with Nonblocking-Delivery.
		fired := append([]*Event{out.Event}, append(out.Sent, out.ReplyEvents...)...)
		if len(fired) != len(fx.esl) {
			t.Errorf("%s: %d events, ESL saw %d", fx.name, len(fired), len(fx.esl))
			continue
		}
		for i, e := range fired {
			e = e.Clone()
			e.Set("Nonblocking-Delivery", "true")
			if !reflect.DeepEqual(e, fx.esl[i]) {
				t.Errorf("%s: event %d differs from ESL:\n got %v %q\nwant %v %q", fx.name, i, e.Headers, e.Body, fx.esl[i].Headers, fx.esl[i].Body)
			}
		}
	}
}

// TestApplyChatplanSetFinal is scenario 13: `set sipsilo_id=…` + `final`.
// The event is rebuilt from the captured ESL event (whose request was not
// recorded), and the result must equal that event.
func TestApplyChatplanSetFinal(t *testing.T) {
	esl := loadESL(t, fixtureDir+"/11_s13_chatplan_set_final.esl.json")
	if len(esl) != 1 {
		t.Fatalf("want 1 captured event, got %d", len(esl))
	}
	var posted []Header
	for _, h := range esl[0].Headers {
		if h.Name == "sipsilo_id" {
			break
		}
		posted = append(posted, h)
	}
	ev := NewMessageEvent(paramsFromForm(t, posted))
	ev.Body = esl[0].Body
	if !reflect.DeepEqual(ev.Headers, posted) {
		t.Fatalf("rebuilt event differs:\n got %v\nwant %v", ev.Headers, posted)
	}
	for _, id := range []string{"01JFIXTURE0000000000000001", "X"} {
		doc := `<document type="freeswitch/xml"><section name="chatplan"><context name="public">
  <extension name="sipsilo"><condition field="to_user" expression="^1001$">
    <action application="set" data="sipsilo_id=` + id + `"/>
    <action application="final"/>
  </condition></extension></context></section></document>`
		out, err := ApplyChatplan([]byte(doc), ev)
		if err != nil {
			t.Fatal(err)
		}
		if !out.Final || out.NotFound || out.DirectDeliveries != 0 || out.Vars["sipsilo_id"] != id || len(out.Sent) != 0 {
			t.Errorf("%s: %+v", id, out)
		}
		if id != "X" {
			got := out.Event.Clone()
			got.Set("Nonblocking-Delivery", "true")
			if !reflect.DeepEqual(got, esl[0]) {
				t.Errorf("differs from ESL:\n got %v\nwant %v", got.Headers, esl[0].Headers)
			}
		}
	}
}

// doc wraps extensions in a chatplan document for context "public".
func doc(exts string) []byte {
	return []byte(`<?xml version="1.0"?><document type="freeswitch/xml"><section name="chatplan"><context name="public">` +
		exts + `</context></section></document>`)
}

func TestApplyChatplanSemantics(t *testing.T) {
	base := func() *Event {
		return NewMessageEvent(MessageParams{Sequence: 7, Timestamp: time.Unix(0, 0), FromTag: "t1", Body: "${to_user} 50%"})
	}
	cases := []struct {
		name    string
		doc     []byte
		ev      func(*Event)
		dd      int
		nf, fin bool
		replies []string
		check   func(*Outcome) string
	}{
		{name: "no matching extension", doc: doc(`<extension><condition field="to_user" expression="^2000$"><action application="final"/></condition></extension>`), dd: 1, nf: true},
		{name: "context missing", doc: []byte(`<document><section name="chatplan"><context name="other"/></section></document>`), dd: 1, nf: true},
		{name: "global context used", doc: []byte(`<document><section name="chatplan"><context name="global"><extension><condition><action application="final"/></condition></extension></context></section></document>`), fin: true},
		{name: "no context header means default", ev: func(e *Event) { e.Del("context") },
			doc:     []byte(`<document><section name="chatplan"><context name="public"><extension><condition><action application="final"/></condition></extension></context><context name="default"><extension><condition><action application="reply" data="d"/></condition></extension></context></section></document>`),
			dd:      1,
			replies: []string{"d"}},
		{name: "context name case-insensitive", doc: []byte(`<document><section name="chatplan"><context name="PUBLIC"><extension><condition><action application="final"/></condition></extension></context></section></document>`), fin: true},
		{name: "unparsable falls back", doc: []byte(`<document><section name="chatplan">`), dd: 1, nf: true, check: func(o *Outcome) string { return iff(!o.Fallback, "no fallback") }},
		{name: "nil doc falls back", doc: nil, dd: 1, nf: true},
		{name: "body is not expanded twice", doc: doc(`<extension><condition field="to_user" expression="^1001$"><action application="set" data="copy=[${_body}]"/><action application="final"/></condition></extension>`), fin: true,
			check: func(o *Outcome) string { return iff(o.Vars["copy"] != "[${to_user} 50%]", o.Vars["copy"]) }},
		{name: "capture groups are expanded after substitution", doc: doc(`<extension><condition field="_body" expression="^(\S+)"><action application="set" data="cap=$1"/></condition></extension>`), dd: 1,
			check: func(o *Outcome) string {
				return iff(o.Vars["cap"] != "1001" || o.Event.Get("DP_MATCH") != "${to_user}", o.Vars["cap"])
			}},
		{name: "field with variables", doc: doc(`<extension><condition field="${to_user}@${to_host}" expression="^1001@127\.0\.0\.1$"><action application="final"/></condition></extension>`), fin: true},
		{name: "regex flags", doc: doc(`<extension><condition field="subject" expression="/^simple/i"><action application="final"/></condition></extension>`), fin: true},
		{name: "DP_MATCH keeps the last group", doc: doc(`<extension><condition field="from_full" expression="^&lt;sip:(\d+)@([^>]+)&gt;"><action application="set" data="m=${DP_MATCH}/$2"/></condition></extension>`), dd: 1,
			check: func(o *Outcome) string { return iff(o.Vars["m"] != "127.0.0.1/127.0.0.1", o.Vars["m"]) }},
		{name: "stop ends apps, delivery stays", doc: doc(`<extension><condition><action application="set" data="a=1"/><action application="stop"/><action application="final"/></condition></extension>`), dd: 1,
			check: func(o *Outcome) string {
				return iff(o.Vars["a"] != "1" || o.Event.Get("final_delivery") != "", "final ran after stop")
			}},
		{name: "unknown app ends apps", doc: doc(`<extension><condition><action application="set" data="a=1"/><action application="lua" data="x.lua"/><action application="final"/></condition></extension>`), dd: 1},
		{name: "final stops later apps", doc: doc(`<extension><condition><action application="final"/><action application="send"/></condition></extension>`), fin: true},
		{name: "set final_delivery works like final", doc: doc(`<extension><condition><action application="set" data="final_delivery=true"/></condition></extension>`), fin: true},
		{name: "set empty deletes, unset", doc: doc(`<extension><condition><action application="set" data="a=1"/><action application="set" data="b=2"/><action application="set" data="a="/><action application="unset" data="b"/><action application="unset" data="subject"/></condition></extension>`), dd: 1,
			check: func(o *Outcome) string {
				_, a := o.Event.Value("a")
				_, s := o.Event.Value("subject")
				return iff(a || s || len(o.Vars) != 0, "not deleted")
			}},
		{name: "send to another proto is not delivered", doc: doc(`<extension><condition><action application="send" data="xmpp"/></condition></extension>`), dd: 1,
			check: func(o *Outcome) string {
				return iff(len(o.Sent) != 1 || o.Sent[0].Get("dest_proto") != "xmpp", "send copy")
			}},
		{name: "anti-action", doc: doc(`<extension><condition field="to_user" expression="^2000$"><action application="final"/><anti-action application="reply" data="no"/></condition></extension>`), dd: 1, replies: []string{"no"}},
		{name: "continue collects, break never", doc: doc(`<extension continue="true"><condition field="to_user" expression="^1001$"><action application="reply" data="1"/></condition></extension>
			<extension><condition field="to_user" expression="^x$" break="never"/><condition><action application="reply" data="2"/></condition></extension>
			<extension><condition><action application="reply" data="3"/></condition></extension>`), dd: 1, replies: []string{"1", "2", "3"}},
		{name: "on-false break skips later conditions", doc: doc(`<extension><condition field="to_user" expression="^x$"/><condition><action application="reply" data="2"/></condition></extension>`), dd: 1, nf: true},
		{name: "loop and inline", doc: doc(`<extension><condition><action application="reply" data="${a}" loop="2"/><action application="set" data="a=1" inline="true"/></condition></extension>`), dd: 1, replies: []string{"1", "1"}},
		{name: "reply without data", doc: doc(`<extension><condition><action application="reply"/></condition></extension>`), dd: 1, replies: []string{""},
			check: func(o *Outcome) string {
				r := o.ReplyEvents[0]
				return iff(r.Body != "" || r.Get("to_user") != "1000" || r.Get("from_user") != "1001" || r.Get("orig_body") != "${to_user} 50%", "reply event")
			}},
		{name: "skipped for a reply", ev: func(e *Event) { e.Set("replying", "true") }, doc: doc(`<extension><condition><action application="final"/></condition></extension>`), dd: 1, nf: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := base()
			if c.ev != nil {
				c.ev(ev)
			}
			out, err := ApplyChatplan(c.doc, ev)
			if err != nil {
				t.Fatal(err)
			}
			if out.DirectDeliveries != c.dd || out.NotFound != c.nf || out.Final != c.fin || !reflect.DeepEqual(out.Replies, c.replies) {
				t.Errorf("dd=%d nf=%v final=%v replies=%q (%s; %s)", out.DirectDeliveries, out.NotFound, out.Final, out.Replies, out.Reason, strings.Join(out.Log, " | "))
			}
			if c.check != nil {
				if msg := c.check(out); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
	if _, err := ApplyChatplan(nil, nil); err == nil {
		t.Error("nil event accepted")
	}
}

func iff(bad bool, msg string) string {
	if bad {
		if msg == "" {
			msg = "check failed"
		}
		return msg
	}
	return ""
}

func TestSubstitute(t *testing.T) {
	m := regexPerform("abc-def", `^(\w+)-(\w+)$`)
	cases := []struct{ in, want string }{
		{"$1+$2", "abc+def"}, {"${2}x", "defx"}, {"$9|$x|${x", "|$x|${x"}, {"${12x", "12x"}, {"$0", "abc-def"},
	}
	for _, c := range cases {
		if got := substitute(c.in, m, 100); got != c.want {
			t.Errorf("substitute(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := substitute("$1$1$1", m, 8); got != "abcabca" {
		t.Errorf("limit: %q", got)
	}
	if m := regexPerform("5551234", "_NXX."); m == nil || m.count != 1 {
		t.Error("dialplan pattern _NXX. did not match")
	}
}
