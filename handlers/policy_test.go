package handlers

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

func openKV(t *testing.T, o kv.Options) *kv.Store {
	t.Helper()
	s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestChatplanOverQuotaLeavesToFreeSWITCHAndCounts(t *testing.T) {
	s := openKV(t, kv.Options{Quota: 3})
	ts := startServer(t, Config{}, s)
	for seq := range 3 {
		f := form(map[string]*string{"Event-Sequence": ptr(itoa(seq))})
		if a := post(t, ts.url, http.MethodPost, bodyQuery("fits"), f); a.storedID() == "" {
			t.Fatalf("message %d not stored:\n%s", seq, a.body)
		}
	}
	a := post(t, ts.url, http.MethodPost, bodyQuery("one too many"), form(map[string]*string{"Event-Sequence": ptr("9")}))
	if a.status != http.StatusOK || !a.notFound() {
		t.Fatalf("over quota: status %d, answer:\n%s", a.status, a.body)
	}
	if s.QuotaRefusals() != 1 || s.Depth("1001@127.0.0.1") != 3 {
		t.Fatalf("refusals %d, depth %d", s.QuotaRefusals(), s.Depth("1001@127.0.0.1"))
	}
	// Another recipient is not affected.
	other := form(map[string]*string{"Event-Sequence": ptr("10"), "to": ptr("1002@127.0.0.1"), "to_user": ptr("1002")})
	if a := post(t, ts.url, http.MethodPost, bodyQuery("other"), other); a.storedID() == "" {
		t.Fatalf("other recipient refused:\n%s", a.body)
	}
}

func TestChatplanNeverStoresTheServiceAddress(t *testing.T) {
	ts := startServer(t, Config{Chatplan: ChatplanConfig{ServiceAddress: "SipSilo@127.0.0.1"}}, nil)
	f := form(map[string]*string{"from": ptr("sipsilo@127.0.0.1"), "from_user": ptr("sipsilo")})
	if a := post(t, ts.url, http.MethodPost, bodyQuery("a notice"), f); !a.notFound() {
		t.Fatalf("message from the service address stored:\n%s", a.body)
	}
	if all, _ := ts.store.All(); len(all) != 0 {
		t.Fatalf("%d stored", len(all))
	}
	if a := post(t, ts.url, http.MethodPost, bodyQuery("a user"), form(nil)); a.storedID() == "" {
		t.Fatalf("ordinary message not stored:\n%s", a.body)
	}
}

func TestChatplanSenderExpiresOnlyShortens(t *testing.T) {
	s := openKV(t, kv.Options{TTL: time.Hour})
	ts := startServer(t, Config{}, s)
	for _, c := range []struct {
		field, value string
		want         time.Duration
	}{
		{"sip_h_Expires", "60", time.Minute},
		{"Expires", "120", 2 * time.Minute},
		{"sip_h_Expires", "86400", time.Hour}, // longer than the TTL
		{"sip_h_Expires", "0", time.Hour},
		{"sip_h_Expires", "soon", time.Hour},
	} {
		f := append(form(nil), []byte("&"+c.field+"="+c.value)...)
		id := post(t, ts.url, http.MethodPost, bodyQuery("x"), f).storedID()
		m, err := s.Get(id)
		if err != nil {
			t.Fatalf("%s=%s: %v", c.field, c.value, err)
		}
		if got := m.Expires.Sub(m.Received); got != c.want {
			t.Errorf("%s=%s: lifetime %v, want %v", c.field, c.value, got, c.want)
		}
	}
}

func TestChatplanBodyLimitLeavesToFreeSWITCH(t *testing.T) {
	ts := startServer(t, Config{Chatplan: ChatplanConfig{MaxBody: 10}}, nil)
	if a := post(t, ts.url, http.MethodPost, bodyQuery(strings.Repeat("x", 10)), form(nil)); a.storedID() == "" {
		t.Fatalf("body at the limit refused:\n%s", a.body)
	}
	if a := post(t, ts.url, http.MethodPost, bodyQuery(strings.Repeat("x", 11)), form(nil)); !a.notFound() {
		t.Fatalf("body over the limit stored:\n%s", a.body)
	}
}
