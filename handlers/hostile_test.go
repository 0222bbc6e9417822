package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// TestAccessLogNamesRoutesNotAddresses: above debug the access log printed the
// concrete path, so /api/v1/queue/<user@host> put addresses into INFO logs, on
// 401s too. It now names the route pattern.
func TestAccessLogNamesRoutesNotAddresses(t *testing.T) {
	ts := startServer(t, Config{Admin: AdminConfig{Token: viewToken}}, nil)
	ts2 := startServer(t, Config{Admin: AdminConfig{Token: viewToken, Views: AdminViews{Store: ts.store}}}, ts.store)
	secret := "secret-user@secret.example"
	id, err := ts.store.Enqueue(context.Background(), &kv.Message{From: "1000@h", To: secret, Body: []byte("b"), BodySource: kv.BodyQuery})
	if err != nil {
		t.Fatal(err)
	}
	paths := []struct {
		path, token string
		status      int
	}{
		{"/api/v1/queue/" + url.PathEscape(secret), "", http.StatusUnauthorized},
		{"/api/v1/queue/" + url.PathEscape(secret), "wrong", http.StatusUnauthorized},
		{"/api/v1/queue/" + url.PathEscape(secret), viewToken, http.StatusOK},
		{"/api/v1/messages/" + id, viewToken, http.StatusOK},
		{"/api/v1/presence/" + url.PathEscape(secret), viewToken, http.StatusServiceUnavailable},
		{"/no/such/" + url.PathEscape(secret), "", http.StatusNotFound},
	}
	for _, p := range paths {
		if code, body := viewGet(t, ts2.url, p.path, p.token); code != p.status {
			t.Fatalf("GET %s: %d %s, want %d", p.path, code, body, p.status)
		}
	}
	logs := ts2.logs.String()
	for _, leak := range []string{"secret", id} {
		if strings.Contains(logs, leak) {
			t.Fatalf("INFO access log holds %q:\n%s", leak, logs)
		}
	}
	for _, want := range []string{"route=/api/v1/queue/:aor status=401", "route=/api/v1/queue/:aor status=200",
		"route=/api/v1/messages/:id status=200", "route=unrouted status=404"} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %q:\n%s", want, logs)
		}
	}
}

// TestChatplanRefusesUnstorableFields: a 1 KiB to_user or a 32 KiB Core-UUID got
// not-found with an ERROR "not stored" (tripping the store-error alert, and the
// oversized key failed the whole group commit); CR/LF/NUL in to_user, from_full or
// type were stored although inject refuses them and the admin API cannot address
// such a queue. Now: 400 with the not-found document, counted, logged by field name.
func TestChatplanRefusesUnstorableFields(t *testing.T) {
	observed := make(chan string, 64)
	cfg := Config{Chatplan: ChatplanConfig{Observe: func(answer, why string, _ time.Duration) { observed <- answer + "/" + why }}}
	ts := startServer(t, cfg, nil)
	const marker = "HOSTILEVALUE"
	cases := map[string]string{
		"to_user":   marker + strings.Repeat("u", 1100),
		"Core-UUID": marker + strings.Repeat("c", 32<<10),
		"from_user": marker + strings.Repeat("f", 300),
		"to_host":   marker + strings.Repeat("h", 300) + ".example",
		"type":      "text/plain\r\nX-" + marker + ": 1",
		"from_full": "<sip:1000@127.0.0.1>\n" + marker,
	}
	for _, ch := range []string{"\r", "\n", "\x00", "\x1b"} {
		cases["to_user"+strings.TrimSpace(fmt.Sprintf("%q", ch))] = "10" + ch + "01" + marker
	}
	for name, v := range cases {
		field, _, _ := strings.Cut(name, `"`)
		a := post(t, ts.url, http.MethodPost, bodyQuery("hi"), form(map[string]*string{field: ptr(v)}))
		if a.status != http.StatusBadRequest || !a.notFound() {
			t.Errorf("%s: status %d, want 400 with the not-found document:\n%.300s", name, a.status, a.body)
		}
		select {
		case got := <-observed:
			if got != AnswerNotFound+"/"+WhyBadField {
				t.Errorf("%s: counted as %s", name, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: answer never observed", name)
		}
	}
	if all, _ := ts.store.All(); len(all) != 0 {
		t.Fatalf("stored %d messages with unstorable fields", len(all))
	}
	logs := ts.logs.String()
	if strings.Contains(logs, "level=ERROR") || strings.Contains(logs, marker) || !strings.Contains(logs, "to_user longer than") {
		t.Fatalf("rejections must be WARNs naming the field, never its value:\n%.3000s", logs)
	}
	// The limits leave real addresses alone.
	ok := form(map[string]*string{"to_user": ptr(strings.Repeat("9", 256)), "from_full": ptr(`"Ann Smith" <sip:1000@127.0.0.1>;tag=x`)})
	if post(t, ts.url, http.MethodPost, bodyQuery("hi"), ok).storedID() == "" {
		t.Fatal("a 256-byte to_user and a display name were refused")
	}
}

// TestInjectRefusesTrailingBytes: a second object or junk after the JSON object
// was ignored and the first stored.
func TestInjectRefusesTrailingBytes(t *testing.T) {
	ts, _ := startAdmin(t, kv.Options{}, 1024)
	obj := `{"from":"crm@example.com","to":"1001@example.com","body":"hi"}`
	for _, body := range []string{obj + "junk", obj + obj, obj + ` {"x":1}`, obj + "]"} {
		var e struct{ Error string }
		if code := call(t, "POST", ts.url+"/api/v1/messages", token, body, &e); code != http.StatusBadRequest || e.Error == "" {
			t.Errorf("%q: %d %q, want 400", body, code, e.Error)
		}
	}
	if all, _ := ts.store.All(); len(all) != 0 {
		t.Fatalf("stored %d messages from refused requests", len(all))
	}
	if code := call(t, "POST", ts.url+"/api/v1/messages", token, obj+" \n", nil); code != http.StatusCreated {
		t.Fatalf("object with trailing white space: %d", code)
	}
}

// TestListsRefuseCursorsTheyNeverGave: /dead?after=zzz was 200 (a page from
// wherever zzz sorts) while /queue/{aor}?after=zzz was 400; every list now refuses
// an after= that is no position in it, with the same answer.
func TestListsRefuseCursorsTheyNeverGave(t *testing.T) {
	f := startViews(t, nil)
	want := ""
	for _, p := range []string{"/api/v1/queue/1001@127.0.0.1?after=zzz", "/api/v1/dead?after=zzz",
		"/api/v1/dead?state=delivered&after=zzz", "/api/v1/presence?after=zzz", "/api/v1/dead?after=" + f.ids["q0"] + "x"} {
		code, body := viewGet(t, f.url, p, viewToken)
		if code != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", p, code, body)
		}
		if want == "" {
			want = string(body)
		} else if string(body) != want {
			t.Errorf("GET %s: %s, want the same answer as the others: %s", p, body, want)
		}
	}
	// Real cursors still page.
	var page messagePageJSON
	viewJSON(t, f.url, "/api/v1/dead?state=queued&limit=1", &page)
	if page.Next == "" {
		t.Fatal("no next cursor")
	}
	if code, body := viewGet(t, f.url, "/api/v1/dead?state=queued&limit=1&after="+page.Next, viewToken); code != http.StatusOK {
		t.Fatalf("next page: %d %s", code, body)
	}
	if code, body := viewGet(t, f.url, "/api/v1/presence?limit=1&after=1000@127.0.0.1", viewToken); code != http.StatusOK {
		t.Fatalf("presence next page: %d %s", code, body)
	}
}

// TestAccessLogChatplanAnswersAtDebug: a chatplan lookup answered 2xx comes
// once per MESSAGE, so its access line is at debug (counted in /metrics
// instead); a chatplan lookup refused (4xx) is still logged at info, as is
// every other route.
func TestAccessLogChatplanAnswersAtDebug(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	if a := post(t, ts.url, http.MethodPost, bodyQuery("hello"), form(nil)); a.storedID() == "" {
		t.Fatalf("not stored: %d %s", a.status, a.body)
	}
	res, err := http.Post(ts.url+ChatplanPath, "application/x-www-form-urlencoded", strings.NewReader("section=chatplan&%zz"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed form: %d, want 400", res.StatusCode)
	}
	if code, body := viewGet(t, ts.url, "/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz: %d %s", code, body)
	}
	logs := ts.logs.String()
	if strings.Contains(logs, "route="+ChatplanPath+" status=200") {
		t.Errorf("a stored message's lookup logged above debug:\n%s", logs)
	}
	for _, want := range []string{"route=" + ChatplanPath + " status=400", "route=/healthz status=200"} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %q:\n%s", want, logs)
		}
	}
}
