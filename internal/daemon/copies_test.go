package daemon

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
)

// The daemon wires presence's devices into intake and relay: on a switch with
// multiple-registrations=contact, each of a user's two phones gets every
// message once, in order, through FreeSWITCH's chat to its own contact.
func TestEachDeviceGetsItsCopy(t *testing.T) {
	cfg := testConfig(t, "", "ClueCon")
	sw, err := fsemu.NewSwitch(fsemu.SwitchOptions{MultipleRegistrations: "contact", ChatResultFloor: -1,
		XMLCurl: &fsemu.XMLCurl{URL: strings.Replace(conf.ChatplanURL, "127.0.0.1:8484", cfg.HTTPAddr, 1), Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	cfg.ESLAddr = sw.ESL().Addr()
	cfg.Relay.Settle = 20 * time.Millisecond
	cfg.AdminToken = "t"
	logs := &syncBuffer{}
	d, err := New(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	waitReady(t, cfg.HTTPAddr, logs)

	ua := func(user string) *fsemu.UA {
		u, err := fsemu.NewUA(fsemu.UAOptions{User: user, Password: "1234", Switch: sw.SIPAddr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close() })
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		if err := u.Register(rctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		return u
	}
	alice, desk, mobile := ua("1000"), ua("1001"), ua("1001")
	waitDevices(t, cfg.HTTPAddr, "1001@127.0.0.1", 2, logs) // the REGISTER events reached presence
	const n = 5
	for i := range n {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		code, err := alice.SendMessage(sctx, "1001", "text/plain", []byte(fmt.Sprint("m", i)))
		scancel()
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("MESSAGE %d: %d %v", i, code, err)
		}
	}
	for name, u := range map[string]*fsemu.UA{"desk": desk, "mobile": mobile} {
		var recv []fsemu.Received
		timeout := time.After(20 * time.Second)
		for len(recv) < n {
			select {
			case m := <-u.Received():
				recv = append(recv, m)
			case <-timeout:
				t.Fatalf("%s got %d\n%s", name, len(recv), logs)
			}
		}
		// In the order the MESSAGEs reached the phone's socket.
		slices.SortFunc(recv, func(a, b fsemu.Received) int { return cmp.Compare(a.Arrival, b.Arrival) })
		var got []string
		for _, m := range recv {
			got = append(got, string(m.Body))
		}
		if strings.Join(got, ",") != "m0,m1,m2,m3,m4" {
			t.Errorf("%s got %v, want each once in order", name, got)
		}
	}
	if c := sw.Chats(); c != 2*n {
		t.Errorf("%d chats, want one per device and message", c)
	}
}

// waitDevices waits until the admin API shows aor with n devices.
func waitDevices(t *testing.T, addr, aor string, n int, logs *syncBuffer) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/presence/"+aor, nil)
		req.Header.Set("Authorization", "Bearer t")
		var v struct {
			Devices []json.RawMessage `json:"devices"`
		}
		if res, err := client.Do(req); err == nil {
			_ = json.NewDecoder(res.Body).Decode(&v)
			res.Body.Close()
			if len(v.Devices) == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence never showed %d devices of %s\n%s", n, aor, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady waits for /readyz to answer 200.
func waitReady(t *testing.T, addr string, logs *syncBuffer) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\n%s", err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
