package handlers

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

// targets is presence's Targets as the handlers see it, recording its calls.
type targets struct {
	mu    sync.Mutex
	keys  []string
	asked []string
}

func (tg *targets) get(aor string) []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.asked = append(tg.asked, aor)
	return append([]string(nil), tg.keys...)
}

func TestChatplanGivesACopyPerTargetDevice(t *testing.T) {
	tg := &targets{keys: []string{"instance:<urn:uuid:a>", "contact:sip:1001@127.0.0.1:5062"}}
	ts := startServer(t, Config{Chatplan: ChatplanConfig{Targets: tg.get}}, nil)
	a := post(t, ts.url, http.MethodPost, bodyQuery("to every device"), form(map[string]*string{"Event-Sequence": ptr("1")}))
	m, err := ts.store.Get(a.storedID())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Devices) != 2 || m.Devices[0].Key != tg.keys[0] || m.Devices[1].Key != tg.keys[1] ||
		m.Devices[0].State != kv.StateQueued || m.Devices[1].State != kv.StateQueued {
		t.Fatalf("copies %+v", m.Devices)
	}
	if len(tg.asked) != 1 || tg.asked[0] != "1001@127.0.0.1" {
		t.Fatalf("targets asked for %v", tg.asked)
	}

	// One device: stored exactly as without targets.
	tg.mu.Lock()
	tg.keys = tg.keys[:1]
	tg.mu.Unlock()
	a = post(t, ts.url, http.MethodPost, bodyQuery("to the one device"), form(map[string]*string{"Event-Sequence": ptr("2")}))
	if m, err = ts.store.Get(a.storedID()); err != nil || m.Devices != nil {
		t.Fatalf("one target: copies %+v %v", m.Devices, err)
	}
}

func TestInjectTakesTargetsAndTheMessageShowsItsCopies(t *testing.T) {
	s := openKV(t, kv.Options{})
	tg := &targets{keys: []string{"desk", "mobile"}}
	ts := startServer(t, Config{Admin: AdminConfig{Token: token, Actions: &fakeActions{Store: s},
		Views: AdminViews{Store: s}, Targets: tg.get}}, s)
	var got struct{ ID string }
	code := call(t, "POST", ts.url+"/api/v1/messages", token,
		map[string]string{"from": "crm@example.com", "to": "1001@127.0.0.1", "body": "hi"}, &got)
	if code != http.StatusCreated {
		t.Fatalf("inject: %d", code)
	}
	ctx := t.Context()
	if _, err := s.BeginCopyAttempt(ctx, got.ID, "desk", got.ID+"-d0-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.CopyDelivered(ctx, got.ID, "desk", got.ID+"-d0-1", "Sent"); err != nil {
		t.Fatal(err)
	}
	var view struct {
		State   string `json:"state"`
		Devices []struct {
			Key      string `json:"key"`
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
		} `json:"devices"`
		History []struct {
			Kind   string `json:"kind"`
			Device string `json:"device"`
		} `json:"history"`
	}
	if code := call(t, "GET", ts.url+"/api/v1/messages/"+got.ID, token, nil, &view); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	if view.State != "queued" || len(view.Devices) != 2 || view.Devices[0].Key != "desk" || view.Devices[0].State != "delivered" ||
		view.Devices[0].Attempts != 1 || view.Devices[1].State != "queued" {
		t.Fatalf("view %+v", view)
	}
	var kinds []string
	for _, h := range view.History {
		kinds = append(kinds, h.Kind+":"+h.Device)
	}
	if got := strings.Join(kinds, " "); got != "received: delivered:desk" {
		t.Fatalf("history %s", got)
	}
}
