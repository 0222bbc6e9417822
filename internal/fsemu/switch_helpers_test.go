package fsemu

import (
	"context"
	"strings"
	"testing"
	"time"
)

// eslSub is the subscription of the recorded transcripts (testdata/esl/README.md).
const eslSub = "event json MESSAGE PRESENCE_IN SEND_MESSAGE CUSTOM sofia::register sofia::unregister sofia::expire sofia::sip_user_state sofia::pre_register sofia::error SMS::DELIVERY_REPORT SMS::SEND_MESSAGE"

func newSwitch(t *testing.T, opts SwitchOptions) *Switch {
	t.Helper()
	s, err := NewSwitch(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newUA(t *testing.T, s *Switch, user string) *UA {
	t.Helper()
	u, err := NewUA(UAOptions{User: user, Password: "1234", Switch: s.SIPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func register(t *testing.T, u *UA) {
	t.Helper()
	if err := u.Register(testCtx(t), 300*time.Second); err != nil {
		t.Fatal(err)
	}
}

// eventKey names an event as the recordings do: Event-Name or the subclass.
func eventKey(ev *Event) string {
	if sub, ok := ev.Value("Event-Subclass"); ok {
		return sub
	}
	return ev.Get("Event-Name")
}

// headerNames lists the header names in order, without the body pair
// (Content-Length/_body are framing).
func headerNames(ev *Event) []string {
	var out []string
	for _, h := range ev.Headers {
		if h.Name == "Content-Length" || h.Name == "_body" {
			continue
		}
		out = append(out, h.Name)
	}
	return out
}

// capturedByKey returns the captured events of a transcript, in order.
func capturedKeys(t *testing.T, name string) []*Event {
	t.Helper()
	var out []*Event
	for _, c := range capturedEvents(t, name) {
		out = append(out, c.ev)
	}
	return out
}

// sameShape compares header names and order, and the values that do not
// vary between runs (those not in vary).
func sameShape(t *testing.T, what string, got, want *Event, fixed ...string) {
	t.Helper()
	g, w := strings.Join(headerNames(got), ","), strings.Join(headerNames(want), ",")
	if g != w {
		t.Errorf("%s: header names\n got %s\nwant %s", what, g, w)
	}
	for _, name := range fixed {
		if gv, wv := got.Get(name), want.Get(name); gv != wv {
			t.Errorf("%s: %s = %q, captured %q", what, name, gv, wv)
		}
	}
}
