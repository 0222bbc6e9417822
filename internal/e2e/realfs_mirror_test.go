package e2e

import (
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/mariadbtest"
)

// scenarioMySQLMirror: messages through the switch reach MariaDB byte for
// byte, each delivered once with one delivered event.
func scenarioMySQLMirror(t *testing.T, sw testSwitch) {
	db := mariadbtest.Start(t)
	d := openDB(t, db)
	r := newSwitchRig(t, sw, "--mysql-dsn", db.DSN(), "--log-level", "info")
	alice, bob := r.ua("1000"), r.ua("1001")
	registerOn(t, alice)
	registerOn(t, bob)
	in := collect(t, bob)
	bodies := append([]string{"'; DROP TABLE messages; -- \\' \" \\\\ 🎉🚀 𝄞", string(bigBody(8000))}, hostileBodies...)
	var s sent
	for _, b := range bodies {
		s.send(t, alice, "1001", b)
	}
	s.waitAll(t, in, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := in.all()
	s.once(t, got)
	n := len(got) // the accepted ones and any 500'd one FreeSWITCH routed anyway
	waitRows(t, d, n, time.Minute, "SELECT COUNT(*) FROM messages WHERE state = 'delivered'")
	waitRows(t, d, n, time.Minute, "SELECT COUNT(*) FROM message_events WHERE kind = 'delivered'")
	for _, b := range s.accepted {
		if c := count(t, d, "SELECT COUNT(*) FROM messages WHERE body = ?", []byte(b)); c != 1 {
			t.Errorf("body %.40q: %d rows with it byte for byte", b, c)
		}
	}
	if c := count(t, d, "SELECT COUNT(*) FROM messages"); c != n {
		t.Fatalf("%d messages rows, want %d", c, n)
	}
}
