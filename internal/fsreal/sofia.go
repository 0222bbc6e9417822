package fsreal

import (
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
// shared FreeSWITCH starts each test with nobody registered.
func (f *FS) FlushRegistrations(t testing.TB) {
	t.Helper()
	f.MustAPI(t, "sofia profile internal flush_inbound_reg")
	for _, u := range []string{"1000", "1001", "1002", "1003"} {
		f.WaitRegistered(t, u, false, 10*time.Second)
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
