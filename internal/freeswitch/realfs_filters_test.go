package freeswitch

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/dialplan"
	"github.com/sipsilo/sipsilo/esl"
	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/fsreal"
)

// On FreeSWITCH 1.10.12 the default filters (docs/decisions.md §36) let
// through what the Router reads — a registration, the post-chatplan MESSAGE
// with sipsilo_id and the exact body, an unregistration and its PRESENCE_IN —
// and drop the MESSAGE event of a chat's result, which a connection with the
// same subscription and no filters receives.
func TestRealFSDefaultFilters(t *testing.T) {
	if err := fsreal.Available(); err != nil {
		t.Skip(err)
	}
	// The chatplan binding's backend: sipsilo's answer with a fixed id.
	doc, err := dialplan.Chatplan("public", "filtertest01")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write(doc)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	fs := fsreal.Start(t, fsreal.Options{Sipsilo: &conf.Options{HTTPAddr: ln.Addr().String()}})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func(cfg esl.Config) *esl.Client {
		t.Helper()
		c := esl.New(cfg)
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-c.Connected():
		case <-ctx.Done():
			t.Fatal("event socket not connected")
		}
		return c
	}
	filtered := start(esl.Config{Addr: fs.ESLAddr(), Password: fs.ESLPassword()})
	unfiltered := start(esl.Config{Addr: fs.ESLAddr(), Password: fs.ESLPassword(), Subscription: esl.DefaultSubscription})

	ua := func(user string) *fsemu.UA {
		t.Helper()
		u, err := fsemu.NewUA(fsemu.UAOptions{User: user, Password: fsreal.Password, Switch: fs.SIPAddr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = u.Close() })
		return u
	}
	alice, bob := ua("1000"), ua("1001")
	if err := bob.Register(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	const body = "filtered body %41 ü "
	if code, err := alice.SendMessage(ctx, "1001", "text/plain", []byte(body)); err != nil || code != http.StatusAccepted {
		t.Fatalf("MESSAGE: %d %v", code, err)
	}
	// A chat's result fires a MESSAGE event (Delivery-Failure) sipsilo does not read.
	if out, err := fs.API("chat sip|1000@" + fsreal.Domain + "|1001@" + fsreal.Domain + "|chat result|text/plain"); err != nil || !strings.Contains(out, "Sent") {
		t.Fatalf("chat: %q %v", out, err)
	}
	if err := bob.Unregister(ctx); err != nil {
		t.Fatal(err)
	}

	// Read each connection up to both events of the unregistration, which
	// comes last (seen: PRESENCE_IN Unregistered before sofia::unregister).
	collect := func(c *esl.Client) []*esl.Event {
		t.Helper()
		var got []*esl.Event
		presenceIn, unregister := false, false
		for !presenceIn || !unregister {
			select {
			case e := <-c.Events():
				got = append(got, e)
				presenceIn = presenceIn || e.Name == "PRESENCE_IN" && strings.EqualFold(e.Get("status"), "Unregistered")
				unregister = unregister || e.Subclass == "sofia::unregister"
			case <-ctx.Done():
				t.Fatalf("unregistration not seen (PRESENCE_IN %v, sofia::unregister %v); got %d events",
					presenceIn, unregister, len(got))
			}
		}
		return got
	}
	kinds := func(evs []*esl.Event) (names []string, ours *esl.Event, results int) {
		for _, e := range evs {
			name := e.Name
			if e.Subclass != "" {
				name += " " + e.Subclass
			}
			names = append(names, name)
			switch {
			case e.Name == "MESSAGE" && e.Get("sipsilo_id") == "filtertest01" && e.Get("final_delivery") == "true":
				ours = e
			case e.Name == "MESSAGE" && e.Get("Delivery-Failure") != "":
				results++
			}
		}
		return names, ours, results
	}
	fnames, fours, fresults := kinds(collect(filtered))
	unames, uours, uresults := kinds(collect(unfiltered))
	t.Logf("filtered: %q", fnames)
	t.Logf("unfiltered: %q", unames)
	if uours == nil || uresults == 0 {
		t.Fatalf("without filters: post-chatplan MESSAGE %v, chat results %d; the scenario did not happen", uours != nil, uresults)
	}
	if fours == nil || fours.Body != body {
		t.Errorf("filtered: no post-chatplan MESSAGE with the exact body (%v)", fours)
	}
	if fresults != 0 {
		t.Errorf("filtered: %d chat-result MESSAGE events came through", fresults)
	}
	for _, want := range []string{"CUSTOM sofia::register", "CUSTOM sofia::unregister", "PRESENCE_IN"} {
		if !contains(fnames, want) {
			t.Errorf("filtered: no %s", want)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
