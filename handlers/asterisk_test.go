package handlers

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	asteriskconf "github.com/sipsilo/sipsilo/asterisk-conf"
	"github.com/sipsilo/sipsilo/internal/astreal"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// astStore is the real store with a switch for the failure a test wants.
type astStore struct {
	*kv.Store
	mu       sync.Mutex
	fail     error         // Enqueue refuses with it
	hold     bool          // Enqueue waits for its deadline, then refuses
	after    time.Duration // Enqueue stores, then takes this long to return
	queued   chan *kv.Message
	released []string
	// outOfReach is what the intake's OutOfReach answers for every recipient.
	outOfReach atomic.Bool
}

func (s *astStore) Enqueue(ctx context.Context, m *kv.Message) (string, error) {
	s.mu.Lock()
	fail, hold, after := s.fail, s.hold, s.after
	s.mu.Unlock()
	if fail != nil {
		return "", fail
	}
	if hold {
		<-ctx.Done()
		return "", ctx.Err()
	}
	id, err := s.Store.Enqueue(ctx, m)
	time.Sleep(after)
	return id, err
}

func (s *astStore) Release(ctx context.Context, id, reason string) error {
	s.mu.Lock()
	s.released = append(s.released, id)
	s.mu.Unlock()
	return s.Store.Release(ctx, id, reason)
}

func (s *astStore) releasedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.released...)
}

func (s *astStore) set(fail error, hold bool, after time.Duration) {
	s.mu.Lock()
	s.fail, s.hold, s.after = fail, hold, after
	s.mu.Unlock()
}

// astRig is the intake on 127.0.0.1, a real Asterisk whose message context
// calls it, a sender (1000) and a registered recipient (1001) that receives
// whatever Asterisk delivers as stock.
type astRig struct {
	ast        *astreal.Ast
	store      *astStore
	addr       string
	alice, bob *fsemu.UA
}

func newAstRig(t *testing.T) *astRig {
	t.Helper()
	s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	st := &astStore{Store: s, queued: make(chan *kv.Message, 256)}
	log := slog.New(slog.NewTextHandler(&logBuffer{}, nil))
	e := echo.New()
	cfg := AsteriskConfig{Domain: "127.0.0.1", Policy: ChatplanConfig{Queued: func(m *kv.Message) { st.queued <- m }},
		OutOfReach: func(string) bool { return st.outOfReach.Load() }}
	if err := RegisterAsterisk(e, cfg, st, log); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer("", e, log)
	done := make(chan struct{})
	go func() { defer close(done); Serve(srv, ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	r := &astRig{store: st, addr: ln.Addr().String()}
	r.ast = astreal.Start(t, astreal.Options{Sipsilo: &asteriskconf.Options{HTTPAddr: r.addr}})
	r.alice, r.bob = r.ua(t, "1000"), r.ua(t, "1001")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.bob.Register(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *astRig) ua(t *testing.T, user string) *fsemu.UA {
	t.Helper()
	ua, err := fsemu.NewUA(fsemu.UAOptions{User: user, Password: astreal.Password, Switch: r.ast.SIPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	return ua
}

func (r *astRig) send(t *testing.T, ct string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := r.alice.SendMessage(ctx, "1001", ct, body)
	if err != nil || code != 202 {
		t.Fatalf("MESSAGE: %d %v", code, err)
	}
}

// outcome sends body and tells what became of it: stored (and the stored
// message), or delivered as stock (and what the phone got). A marker message
// sent after it, which always goes stock (its trailing newline makes the body
// inexact), bounds the wait: Asterisk runs a context for one message at a time.
func (r *astRig) outcome(t *testing.T, body []byte) (stored *kv.Message, stock *fsemu.Received) {
	t.Helper()
	r.send(t, "text/plain", body)
	marker := []byte("marker " + time.Now().Format(time.RFC3339Nano) + "\n")
	r.send(t, "text/plain", marker)
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-r.store.queued:
			if stored != nil {
				t.Fatalf("stored twice: %q, %q", stored.Body, m.Body)
			}
			stored = m
		case got := <-r.bob.Received():
			if bytes.Equal(got.Body, bytes.TrimRight(marker, "\n")) {
				return stored, stock
			}
			if stock != nil {
				t.Fatalf("delivered twice as stock: %q, %q", stock.Body, got.Body)
			}
			stock = &got
		case <-deadline:
			t.Fatalf("no marker back for body %q\n%s", body, r.ast.LogTail(20))
		}
	}
}

// astHostileBodies are the bodies the FreeSWITCH intake must carry exactly
// (dialplan's and the end-to-end tests' hostile sets) whose last byte is not
// a line break.
var astHostileBodies = []string{
	"", "plain", "pct %41 %2F %4a 100% %%", "%41", "%20lead", "  lead and trail  ",
	"\tTab\vVT\v", "   ", "ends with %4", "ends with %", "pipes a|b||c| tilde ~/p~ slash /",
	"dollar ${x} $${y} ${url_encode(z)} $[1+1] ${MESSAGE(body)}", "quotes it's 'sq' \"dq\" back\\slash \\n \\\\",
	"commas a,b,,c, semicolons ;a;b; parens (x)", "utf8 ümlaut 日本語 🎉 𝄞", "_sentinel_ inside_", "__",
	" lead %41 | pipe 'sq' \"dq\" back\\slash\nnewline\ttab ${x} ümlaut 日本 trail ",
	"100% %2a %zz \\n literal, <xml>&amp;]]> $(rm -rf /); DROP TABLE x; --",
	"\r\nCRLF inside\r\nand more", "owned", "=+/ base64 chars ==", string(bytes.Repeat([]byte("x"), 1000)),
}

// TestAsteriskIntakeHostileBodies: through the real Asterisk, each hostile
// body is stored byte for byte and owned (the phone gets nothing from
// Asterisk); each body Asterisk does not pass exactly (1 KiB and more, a NUL,
// trailing CR/LF) is left to its stock delivery, once, and not stored.
func TestAsteriskIntakeHostileBodies(t *testing.T) {
	r := newAstRig(t)
	for _, b := range astHostileBodies {
		stored, stock := r.outcome(t, []byte(b))
		if stock != nil || stored == nil || !bytes.Equal(stored.Body, []byte(b)) {
			t.Errorf("body %q: stored %v, stock %v", b, stored != nil && bytes.Equal(stored.Body, []byte(b)), stock != nil)
			continue
		}
		if stored.To != "1001@127.0.0.1" || stored.From != "1000@127.0.0.1" || stored.ContentType != "text/plain" {
			t.Errorf("stored %s → %s (%s)", stored.From, stored.To, stored.ContentType)
		}
	}
	for _, b := range []string{
		string(bytes.Repeat([]byte("y"), 1024)), string(bytes.Repeat([]byte("z"), 5000)),
		"before NUL\x00after", "trailing LF\n", "trailing CRLF\r\n", "\r\n",
	} {
		stored, stock := r.outcome(t, []byte(b))
		if stored != nil || stock == nil {
			t.Errorf("inexact body %.20q: stored %v, stock %v", b, stored != nil, stock != nil)
		}
	}
	if n := len(r.store.releasedIDs()); n != 0 {
		t.Errorf("%d released", n)
	}
}

// TestAsteriskIntakeCharset: a charset parameter Asterisk's stock relay drops
// is kept with the stored message.
func TestAsteriskIntakeCharset(t *testing.T) {
	r := newAstRig(t)
	r.send(t, "text/plain; charset=UTF-8", []byte("grüße"))
	m := <-r.store.queued
	if !strings.Contains(strings.ToLower(m.ContentType), "charset=utf-8") || string(m.Body) != "grüße" {
		t.Fatalf("stored %q %q", m.ContentType, m.Body)
	}
}

// TestAsteriskIntakeFallback: whenever sipsilo cannot own a message — the
// store refuses, the store does not answer in time, the answer would come too
// late, sipsilo is down, or sipsilo accepts the connection and never answers —
// Asterisk delivers it as stock, once.
func TestAsteriskIntakeFallback(t *testing.T) {
	r := newAstRig(t)
	stock := func(name string) {
		t.Helper()
		stored, got := r.outcome(t, []byte(name))
		if got == nil || string(got.Body) != name {
			t.Errorf("%s: not delivered as stock (stored %v)", name, stored != nil)
		}
		if stored != nil {
			t.Errorf("%s: stored and owned", name)
		}
	}
	r.store.set(errDiskGone, false, 0)
	stock("store refuses")
	r.store.set(nil, true, 0)
	stock("store holds")
	r.store.set(nil, false, DefaultAsteriskAnswerTimeout+100*time.Millisecond)
	stored, got := r.outcome(t, []byte("stored late"))
	if got == nil || stored != nil || len(r.store.releasedIDs()) != 1 {
		t.Errorf("stored late: stock %v, owned %v, released %v", got != nil, stored != nil, r.store.releasedIDs())
	}
	r.store.set(nil, false, 0)
	// A recipient with a device only Asterisk reaches (NAT): Asterisk's own
	// delivery reaches it, sipsilo's would not.
	r.store.outOfReach.Store(true)
	stock("out of reach")
	r.store.outOfReach.Store(false)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()
	r.ast.PointIntake(t, down)
	stock("sipsilo down")

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var conns sync.WaitGroup
	conns.Add(1)
	go func() { // accept and never answer, until the test ends
		defer conns.Done()
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	defer conns.Wait()
	defer silent.Close()
	r.ast.PointIntake(t, silent.Addr().String())
	stock("sipsilo silent")

	r.ast.PointIntake(t, r.addr)
	if stored, got := r.outcome(t, []byte("back")); stored == nil || got != nil {
		t.Errorf("after pointing back: stored %v, stock %v", stored != nil, got != nil)
	}
}
