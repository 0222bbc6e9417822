package asterisk

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/presence"
)

// fakeList answers PJSIPShowContacts with the contacts it holds.
type fakeList struct {
	mu       sync.Mutex
	contacts []Message
	calls    int
}

func (f *fakeList) set(contacts ...Message) {
	f.mu.Lock()
	f.contacts = contacts
	f.mu.Unlock()
}

func (f *fakeList) Action(_ context.Context, action string, _ ...Field) (*Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.contacts) == 0 { // what Asterisk 22 answers for an empty list
		return &Result{Response: Message{Fields: []Field{{"Response", "Error"}, {"Message", "No Contacts found"}}}},
			fmt.Errorf("%w: %s: No Contacts found", ErrAction, action)
	}
	return &Result{Response: Message{Fields: []Field{{"Response", "Success"}}}, Events: append([]Message(nil), f.contacts...)}, nil
}

func contact(aor, uri, callID string, exp int64) Message {
	return Message{Fields: []Field{{"Event", "ContactList"}, {"ObjectName", aor + ";@abc"}, {"Endpoint", aor},
		{"Uri", uri}, {"CallId", callID}, {"ExpirationTime", strconv.FormatInt(exp, 10)}, {"ViaAddr", "127.0.0.1"},
		{"ViaPort", "5099"}, {"Status", "Reachable"}}}
}

func status(aor, uri, st string) Message {
	return Message{Fields: []Field{{"Event", "ContactStatus"}, {"AOR", aor}, {"URI", uri}, {"ContactStatus", st}}}
}

// TestReachTranslation: the translation on its own, with odd input: fields
// missing, an expiry that is not a number, a verdict on a contact not listed
// yet, an empty list, a full queue.
func TestReachTranslation(t *testing.T) {
	list := &fakeList{}
	rec := newRecorder()
	r := NewReach(ReachConfig{AMI: list, Presence: rec, Domain: "pbx.example", Queue: 4, ResyncEvery: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	exp := time.Now().Add(time.Minute).Unix()

	list.set(contact("1001", "sip:1001@10.0.0.1:5060", "c1", exp),
		Message{Fields: []Field{{"Event", "ContactList"}, {"Endpoint", "1002"}, {"Uri", "sip:x"}, {"CallId", "c2"}, {"ExpirationTime", "soon"}}})
	r.OnConnect(ctx, "s1")
	ev := rec.next(t)
	if ev.Kind != presence.Registered || ev.AOR != "1001@pbx.example" || ev.CallID != "c1" || ev.NetworkPort != 5099 ||
		ev.ExpiresIn < time.Hour || ev.Stream != "ami:s1" || ev.Seq != 1 {
		t.Fatalf("registered %+v", ev)
	}
	r.OnEvent("s1", Message{Fields: []Field{{"Event", "ContactStatus"}, {"ContactStatus", "Reachable"}}}) // no AOR, no URI
	r.OnEvent("s1", status("1001", "sip:1001@10.0.0.1:5060", "Unreachable"))
	if ev = rec.next(t); ev.Kind != presence.ReachChanged || ev.Reach != presence.Unreachable || ev.CallID != "c1" || ev.Seq != 2 {
		t.Fatalf("verdict %+v", ev)
	}
	// A verdict on a contact not seen yet reads the list, which has it.
	list.set(contact("1001", "sip:1001@10.0.0.1:5060", "c1", exp), contact("1003", "sip:1003@10.0.0.3:5060", "c3", exp))
	r.OnEvent("s1", status("1003", "sip:1003@10.0.0.3:5060", "Reachable"))
	// Only the new contact is news: c1 is listed unchanged.
	if ev = rec.next(t); ev.Kind != presence.Registered || ev.CallID != "c3" {
		t.Fatalf("resync on an unknown contact: %+v", ev)
	}
	// A refresh (a later expiry) is.
	list.set(contact("1001", "sip:1001@10.0.0.1:5060", "c1", exp+60), contact("1003", "sip:1003@10.0.0.3:5060", "c3", exp))
	r.OnConnect(ctx, "s1")
	if ev = rec.next(t); ev.Kind != presence.Registered || ev.CallID != "c1" {
		t.Fatalf("refresh: %+v", ev)
	}
	r.OnEvent("s1", status("1003", "sip:1003@10.0.0.3:5060", "Removed"))
	if ev = rec.next(t); ev.Kind != presence.Removed || ev.CallID != "c3" {
		t.Fatalf("removed %+v", ev)
	}
	// An empty list (an error answer on Asterisk 22) removes what is left.
	list.set()
	r.OnConnect(ctx, "s2")
	if ev = rec.next(t); ev.Kind != presence.Removed || ev.CallID != "c1" || ev.Stream != "ami:s2" || ev.Seq != 1 {
		t.Fatalf("after an empty list %+v", ev)
	}
	// More events than the queue holds: some are dropped and a resync is due.
	cancel()
	<-done
	for range 10 {
		r.OnEvent("s2", status("1001", "sip:y", "Reachable"))
	}
	if r.Dropped.Load() == 0 || !r.lost.Load() {
		t.Fatalf("dropped %d, lost %v", r.Dropped.Load(), r.lost.Load())
	}
}
