package fsreal

import (
	"encoding/xml"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
)

// Contact returns user's registered contact on profile internal
// (sofia_contact), "" when the user is not registered.
func (f *FS) Contact(t testing.TB, user string) string {
	t.Helper()
	out := strings.TrimSpace(f.MustAPI(t, "sofia_contact internal/"+user+"@"+Domain))
	if out == "" || strings.HasPrefix(out, "error/") {
		return ""
	}
	return out
}

// WaitRegistered waits until user's registration is there (want true) or gone.
func (f *FS) WaitRegistered(t testing.TB, user string, want bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for (f.Contact(t, user) != "") != want {
		if time.Now().After(deadline) {
			t.Fatalf("fsreal: %s registered: want %v after %v", user, want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FlushRegistrations drops every registration of profile internal, so that a
// shared FreeSWITCH starts each test with nobody registered. It flushes each
// user@domain in turn: FreeSWITCH deletes those rows at once, where the
// argument-less flush queues its DELETE, which then also removed the rows of
// phones the next test had registered meanwhile (sofia_reg_check_expire uses
// sofia_glue_execute_sql, sofia_reg_expire_call_id sofia_glue_execute_sql_now).
func (f *FS) FlushRegistrations(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		users := map[string]bool{}
		for _, r := range f.allRegistrations(t) {
			users[r.User] = true
		}
		if len(users) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fsreal: registrations of %v still there after 10 s of flushing", users)
		}
		for u := range users {
			f.MustAPI(t, "sofia profile internal flush_inbound_reg "+u)
		}
	}
}

// PointChatplan rewrites the chatplan binding for a sipsilo with o's HTTPAddr
// (and credentials) and applies it with `reload mod_xml_curl`, which makes
// mod_xml_curl read its bindings again: one FreeSWITCH can serve several
// sipsilos in turn.
func (f *FS) PointChatplan(t testing.TB, o conf.Options) {
	t.Helper()
	files, err := conf.Render(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if file.Path == "autoload_configs/xml_curl.conf.xml" {
			if err := writeFile(filepath.Join(f.ConfDir(), filepath.FromSlash(file.Path)), file.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out := f.MustAPI(t, "reload mod_xml_curl"); !strings.Contains(out, "+OK module loaded") {
		t.Fatalf("fsreal: reload mod_xml_curl: %q", out)
	}
}

// Registration is one registration as `sofia xmlstatus profile internal reg`
// shows it (the one listing that shows every row of a user with several
// devices; `show registrations` shows one).
type Registration struct {
	CallID string `xml:"call-id"`
	// User is user@domain.
	User string `xml:"user"`
	// Contact is the Contact as stored, display name and brackets included:
	// `"" <sip:1001@127.0.0.1:5080>`.
	Contact     string `xml:"contact"`
	Agent       string `xml:"agent"`
	Status      string `xml:"status"`
	PingStatus  string `xml:"ping-status"`
	NetworkIP   string `xml:"network-ip"`
	NetworkPort string `xml:"network-port"`
}

// Registrations returns user's registrations on profile internal, in
// FreeSWITCH's order.
func (f *FS) Registrations(t testing.TB, user string) []Registration {
	t.Helper()
	var mine []Registration
	for _, r := range f.allRegistrations(t) {
		if r.User == user+"@"+Domain {
			mine = append(mine, r)
		}
	}
	return mine
}

// allRegistrations is every row of profile internal.
func (f *FS) allRegistrations(t testing.TB) []Registration {
	t.Helper()
	out := f.MustAPI(t, "sofia xmlstatus profile internal reg")
	var doc struct {
		Regs []Registration `xml:"registrations>registration"`
	}
	// FreeSWITCH declares ISO-8859-1; the rows the tests make are ASCII.
	d := xml.NewDecoder(strings.NewReader(out))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := d.Decode(&doc); err != nil {
		t.Fatalf("fsreal: sofia xmlstatus profile internal reg: %v\n%s", err, out)
	}
	return doc.Regs
}

// WaitRegistrations waits until user has n registrations on profile internal
// and returns them.
func (f *FS) WaitRegistrations(t testing.TB, user string, n int, within time.Duration) []Registration {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		regs := f.Registrations(t, user)
		if len(regs) == n {
			return regs
		}
		if time.Now().After(deadline) {
			t.Fatalf("fsreal: %s has %d registrations after %v, want %d: %+v", user, len(regs), within, n, regs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
