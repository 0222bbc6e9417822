package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

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
