package handlers

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/sipsilo/sipsilo/kv"
)

// TestAsteriskIntakeRefusesOddRequests: requests the message context would
// never build are answered without "owned" and store nothing; the exact
// ones are owned.
func TestAsteriskIntakeRefusesOddRequests(t *testing.T) {
	s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	e := echo.New()
	err = RegisterAsterisk(e, AsteriskConfig{Domain: "pbx.example", Policy: ChatplanConfig{MaxBody: 100}}, s,
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	good := "exten=1001&from=%3Csip%3A1000%40h%3E&to=pjsip%3A1001%40h&cid=c&ct=text%2Fplain&clen="
	for _, c := range []struct {
		name, query, body string
		status            int
		owned             bool
	}{
		{"exact", good + "5", b64("hello"), 200, true},
		{"empty body", good + "0", "", 200, true},
		{"length differs", good + "7", b64("hello"), 200, false},
		{"not base64", good + "5", "hello!!", 400, false},
		{"no exten", strings.Replace(good, "exten=1001&", "", 1) + "5", b64("hello"), 400, false},
		{"exten with a separator", strings.Replace(good, "exten=1001", "exten=10%3B01", 1) + "5", b64("hello"), 400, false},
		{"no from", strings.Replace(good, "from=%3Csip%3A1000%40h%3E&", "", 1) + "5", b64("hello"), 400, false},
		{"clen not a number", good + "five", b64("hello"), 400, false},
		{"clen negative", good + "-1", b64("hello"), 400, false},
		{"control character in from", strings.Replace(good, "from=%3C", "from=%0D%0A%3C", 1) + "5", b64("hello"), 400, false},
		{"over max body", good + "101", b64(strings.Repeat("x", 101)), 200, false},
		{"post over the limit", good + "5", strings.Repeat("A", 2000), 413, false},
		{"bad query", good + "5&%zz", b64("hello"), 400, false},
	} {
		req := httptest.NewRequest(http.MethodPost, AsteriskPath+"?"+c.query, strings.NewReader(c.body))
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != c.status || (string(body) == AsteriskOwned) != c.owned {
			t.Errorf("%s: %d %q, want %d owned=%v", c.name, rec.Code, body, c.status, c.owned)
		}
	}
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("%d stored, want the 2 exact ones", len(all))
	}
	for _, m := range all {
		if m.To != "1001@pbx.example" || m.From != "1000@h" || m.FromFull != "<sip:1000@h>" || !m.BodyFinal {
			t.Errorf("stored %+v", m)
		}
	}
}
