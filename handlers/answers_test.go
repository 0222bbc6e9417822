package handlers

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

type observed struct {
	answer, why string
	took        time.Duration
}

// observer returns a ChatplanConfig.Observe that hands each call over.
func observer() (func(answer, why string, took time.Duration), <-chan observed) {
	ch := make(chan observed, 16)
	return func(answer, why string, took time.Duration) { ch <- observed{answer, why, took} }, ch
}

// next waits for the observation of the request just answered: Observe runs
// after the answer left, so the client may see the answer first.
func next(t *testing.T, ch <-chan observed) observed {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("no observation")
		return observed{}
	}
}

// Every answer is observed once, with its kind and a reason from the fixed
// table: never anything the request carried.
func TestChatplanObservesEveryAnswerAndWhy(t *testing.T) {
	obs, ch := observer()
	ts := startServer(t, Config{Chatplan: ChatplanConfig{Domains: []string{"127.0.0.1"}, MaxForm: 4096, Observe: obs}}, nil)
	cases := []struct {
		name        string
		query       string
		form        []byte
		answer, why string
	}{
		{"stored", bodyQuery("hi"), form(nil), AnswerFinal, WhyStored},
		{"other section", "", []byte("hostname=vm&section=directory&tag_name=domain&key_name=name&key_value=127.0.0.1"), AnswerNotFound, WhyOtherSection},
		{"non-local recipient", bodyQuery("hi"), form(map[string]*string{"to_host": ptr("elsewhere.net")}), AnswerNotFound, WhyNotLocal},
		{"typing notification", bodyQuery("<isComposing/>"), form(map[string]*string{"type": ptr("application/im-iscomposing+xml")}), AnswerNotFound, WhySkippedType},
		{"body over limit", bodyQuery(strings.Repeat("x", DefaultMaxBody+1)), form(nil), AnswerNotFound, WhyTooLarge},
		{"not for sip", bodyQuery("hi"), form(map[string]*string{"dest_proto": ptr("verto")}), AnswerNotFound, WhyNotSIP},
		{"no recipient", bodyQuery("hi"), form(map[string]*string{"to_user": nil, "to": nil}), AnswerNotFound, WhyBadRequest},
		{"form over limit", bodyQuery("hi"), []byte("section=chatplan&x=" + strings.Repeat("y", 5000)), AnswerNotFound, WhyFormTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			post(t, ts.url, http.MethodPost, c.query, c.form)
			o := next(t, ch)
			if o.answer != c.answer || o.why != c.why || o.took <= 0 {
				t.Fatalf("observed %+v, want %s/%s", o, c.answer, c.why)
			}
		})
	}
}

func TestChatplanObservesStoreFailures(t *testing.T) {
	for _, c := range []struct {
		name    string
		enqueue func(ctx context.Context, m *kv.Message) (string, error)
		why     string
	}{
		{"store error", func(context.Context, *kv.Message) (string, error) { return "", errDiskGone }, WhyStoreError},
		{"deadline", func(ctx context.Context, _ *kv.Message) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}, WhyDeadline},
	} {
		t.Run(c.name, func(t *testing.T) {
			obs, ch := observer()
			cfg := Config{Chatplan: ChatplanConfig{AnswerTimeout: 50 * time.Millisecond, Observe: obs}}
			ts := startServer(t, cfg, &fakeStore{enqueue: c.enqueue})
			post(t, ts.url, http.MethodPost, bodyQuery("hi"), form(nil))
			if o := next(t, ch); o.answer != AnswerNotFound || o.why != c.why {
				t.Fatalf("observed %+v, want not_found/%s", o, c.why)
			}
		})
	}
}

// A stored message whose answer FreeSWITCH no longer waited for is observed as
// lost (released), not as a final answer.
func TestChatplanObservesLostAnswer(t *testing.T) {
	entered := make(chan struct{})
	fs := &fakeStore{enqueue: func(ctx context.Context, _ *kv.Message) (string, error) {
		close(entered)
		<-ctx.Done()
		return "01COMMITTEDLATE", nil
	}}
	obs, ch := observer()
	ts := startServer(t, Config{Chatplan: ChatplanConfig{AnswerTimeout: 10 * time.Second, Observe: obs}}, fs)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	f := form(nil)
	req := "POST " + ChatplanPath + "?body=hi HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Content-Length: " + itoa(len(f)) + "\r\n\r\n" + string(f)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	<-entered
	conn.Close()
	if o := next(t, ch); o.answer != AnswerLost || o.why != WhyReleased {
		t.Fatalf("observed %+v, want lost/released", o)
	}
}

// /metrics is served when configured, without the admin token (Prometheus
// scrapes without credentials), and absent otherwise.
func TestMetricsRoute(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "sipsilo_up 1\n") })
	ts := startServer(t, Config{Metrics: h, Admin: AdminConfig{Token: "secret"}}, nil)
	res, err := http.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != "sipsilo_up 1\n" {
		t.Fatalf("GET /metrics: %d %q", res.StatusCode, body)
	}
	off := startServer(t, Config{}, nil)
	res, err = http.Get(off.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics without a handler: %d", res.StatusCode)
	}
}
