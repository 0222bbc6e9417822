package freeswitch

import (
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/presence"
)

func sofiaEvent(name, subclass string, seq uint64, hs ...string) *esl.Event {
	e := &esl.Event{Name: name, Subclass: subclass, CoreUUID: "core-1", Sequence: seq}
	for i := 0; i+1 < len(hs); i += 2 {
		e.Headers = append(e.Headers, esl.Header{Name: hs[i], Value: hs[i+1]})
	}
	return e
}

// Each sofia event becomes the PBX-neutral event that says the same, with its
// ordering mark and time; PRESENCE_IN Unregistered never becomes Gone.
func TestPresenceEventTranslation(t *testing.T) {
	at := time.Date(2026, 11, 26, 3, 46, 50, 0, time.UTC)
	ts := func() string { return "1795664810000000" }
	for _, c := range []struct {
		name string
		e    *esl.Event
		want presence.Event
	}{
		{"register", sofiaEvent("CUSTOM", "sofia::register", 7, "from-user", "1001", "from-host", "127.0.0.1",
			"call-id", "c1", "expires", "300", "contact", `"" <sip:1001@127.0.0.1:5062>`, "network-ip", "127.0.0.1",
			"network-port", "5062", "profile-name", "internal", "user-agent", "ua/1", "Event-Date-Timestamp", ts()),
			presence.Event{Kind: presence.Registered, AOR: "1001@127.0.0.1", CallID: "c1", Contact: `"" <sip:1001@127.0.0.1:5062>`,
				Profile: "internal", UserAgent: "ua/1", NetworkIP: "127.0.0.1", NetworkPort: 5062, ExpiresIn: 300 * time.Second,
				Source: "sofia::register", Stream: "core-1", Seq: 7, At: at}},
		{"expire", sofiaEvent("CUSTOM", "sofia::expire", 8, "user", "1001", "host", "127.0.0.1", "call-id", "c1"),
			presence.Event{Kind: presence.Removed, AOR: "1001@127.0.0.1", CallID: "c1", Source: "sofia::expire", Stream: "core-1", Seq: 8}},
		{"unregister without call-id", sofiaEvent("CUSTOM", "sofia::unregister", 9, "from-user", "1001", "from-host", "127.0.0.1"),
			presence.Event{Kind: presence.Gone, AOR: "1001@127.0.0.1", Source: "sofia::unregister", Stream: "core-1", Seq: 9}},
		{"unreachable 408", sofiaEvent("CUSTOM", "sofia::sip_user_state", 10, "from-user", "1001", "from-host", "127.0.0.1",
			"call-id", "c1", "Ping-Status", "UNREACHABLE", "Status", "408"),
			presence.Event{Kind: presence.ReachChanged, AOR: "1001@127.0.0.1", CallID: "c1", Reach: presence.Unreachable,
				Status: "UNREACHABLE 408", Source: "sofia::sip_user_state", Stream: "core-1", Seq: 10}},
		{"unreachable 405 is life", sofiaEvent("CUSTOM", "sofia::sip_user_state", 11, "sip_user", "1001@127.0.0.1",
			"call-id", "c1", "Ping-Status", "UNREACHABLE", "Status", "405"),
			presence.Event{Kind: presence.ReachChanged, AOR: "1001@127.0.0.1", CallID: "c1", Reach: presence.Reachable,
				Status: "UNREACHABLE 405", Source: "sofia::sip_user_state", Stream: "core-1", Seq: 11}},
		{"presence unregistered", sofiaEvent("PRESENCE_IN", "", 12, "proto", "sip", "from", "1001@127.0.0.1", "status", "Unregistered"),
			presence.Event{Kind: presence.Unregistered, AOR: "1001@127.0.0.1", Source: "PRESENCE_IN Unregistered", Stream: "core-1", Seq: 12}},
		{"no recipient", sofiaEvent("CUSTOM", "sofia::error", 13, "Error-Reason", "no recipient", "Chat-Send-To", "1001@127.0.0.1"),
			presence.Event{Kind: presence.Gone, AOR: "1001@127.0.0.1", Source: "sofia::error no recipient", KnownOnly: true,
				Stream: "core-1", Seq: 13}},
	} {
		got, ok, err := PresenceEvent(c.e)
		if got.At.Equal(c.want.At) {
			got.At = c.want.At // the same instant; time.UnixMicro gives it in Local
		}
		if err != nil || !ok || got != c.want {
			t.Errorf("%s: %+v %v %v\nwant %+v", c.name, got, ok, err, c.want)
		}
	}
	for name, e := range map[string]*esl.Event{
		"pre_register":       sofiaEvent("CUSTOM", "sofia::pre_register", 1, "from-user", "1001", "from-host", "127.0.0.1"),
		"presence available": sofiaEvent("PRESENCE_IN", "", 2, "from", "1001@127.0.0.1", "status", "Available"),
		"other error":        sofiaEvent("CUSTOM", "sofia::error", 3, "Error-Reason", "other"),
		"nil":                nil,
	} {
		if _, ok, err := PresenceEvent(e); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want ignored", name, ok, err)
		}
	}
	unordered := sofiaEvent("CUSTOM", "sofia::expire", 0, "user", "1001", "host", "127.0.0.1", "call-id", "c1")
	if _, _, err := PresenceEvent(unordered); err == nil {
		t.Error("an event without Event-Sequence was accepted")
	}
}
