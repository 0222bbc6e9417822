package asterisk

import (
	"context"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/astreal"
)

// TestMessageSendCannotConfirm: AMI MessageSend to a phone that answers 200,
// one that answers 486 and one that answers nothing gets the same answer
// from Asterisk 22, so a delivery through Asterisk cannot be confirmed
// (docs/decisions.md §33). Should Asterisk ever tell them apart, this test
// fails and delivery through Asterisk can be reconsidered.
func TestMessageSendCannotConfirm(t *testing.T) {
	a := astreal.Start(t, astreal.Options{})
	c := New(Config{Addr: a.AMIAddr(), User: astreal.AMIUser, Secret: a.AMISecret()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := c.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	// One phone per behaviour: MessageSend returns before Asterisk sends, so
	// one phone switching behaviour would race it.
	answers := map[string]string{}
	stop := make(chan struct{})
	defer close(stop)
	var ok200 <-chan struct{}
	for _, phone := range []struct {
		name, user string
		code       int
		silent     bool
	}{{"200", "1001", 200, false}, {"486", "1002", 486, false}, {"silent", "1003", 200, true}} {
		ua := newUA(t, a, phone.user)
		if err := ua.Register(sipCtx(t), time.Hour); err != nil {
			t.Fatal(err)
		}
		ua.SetAnswer(phone.code)
		ua.SetSilent(phone.silent)
		if phone.name == "200" {
			got := make(chan struct{})
			ok200 = got
			go func() {
				select {
				case m := <-ua.Received():
					if string(m.Body) == "phone answers 200" {
						close(got)
					}
				case <-stop:
				}
			}()
		}
		start := time.Now()
		res, err := c.Action(ctx, "MessageSend", Field{"To", "pjsip:" + phone.user}, Field{"From", "<sip:1000@127.0.0.1>"},
			Field{"Body", "phone answers " + phone.name})
		resp := "error: "
		if err != nil {
			resp += err.Error()
		} else {
			resp = res.Response.Get("Response") + " " + res.Response.Get("Message")
		}
		answers[phone.name] = resp
		t.Logf("phone answering %s: AMI MessageSend answered %q after %v", phone.name, resp, time.Since(start).Round(time.Millisecond))
	}
	select {
	case <-ok200:
	case <-time.After(15 * time.Second):
		t.Fatal("the phone answering 200 did not get its message")
	}
	if answers["200"] != answers["486"] || answers["200"] != answers["silent"] {
		t.Fatalf("Asterisk tells the phones apart: %v", answers)
	}
}
