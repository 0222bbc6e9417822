package e2e

// The MySQL history mirror (docs/decisions.md §23) against a real MariaDB the
// test starts (internal/mariadbtest), the sipsilo binary and the emulator.

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/mariadbtest"
)

func openDB(t testing.TB, db *mariadbtest.Server) *sql.DB {
	t.Helper()
	c, err := mysql.NewConnector(db.DSNConfig())
	if err != nil {
		t.Fatal(err)
	}
	d := sql.OpenDB(c)
	t.Cleanup(func() { d.Close() })
	return d
}

func count(t testing.TB, d *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := d.QueryRow(query, args...).Scan(&n); err != nil {
		return -1 // not there yet (tables are made by sipsilo's migrations)
	}
	return n
}

// waitRows waits until query counts want.
func waitRows(t testing.TB, d *sql.DB, want int, within time.Duration, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := count(t, d, query, args...)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d rows after %v, want %d", query, n, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// postMessages sends n chatplan requests as FreeSWITCH's xml_curl would (new
// connection each), from 1000 to 1001, numbered from first, over 8 senders.
// The ESL body event never comes for these, so each body is final after the
// grace period with the query copy.
func postMessages(t testing.TB, r *rig, first, n int) {
	t.Helper()
	x := &fsemu.XMLCurl{URL: "http://" + r.http + "/fs/chatplan?body=${url_encode(${_body})}", Timeout: 3 * time.Second}
	var next atomic.Int64
	next.Store(int64(first))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(first+n) {
					return
				}
				ev := fsemu.NewMessageEvent(fsemu.MessageParams{Sequence: uint64(1000 + i), FromTag: "mirror", Body: bodyN(int(i))})
				res, err := x.Lookup(context.Background(), ev)
				if err == nil && (res.Fallback || res.NotFound) {
					err = fmt.Errorf("message %d not taken over: %s", i, res.Reason)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func mirrorRig(t *testing.T, db *mariadbtest.Server, extra ...string) (*rig, *inbox) {
	// No quota: these bursts queue thousands for one recipient faster than they
	// drain, which the default quota (1,000) would rightly refuse.
	r := newRig(t, fsemu.SwitchOptions{}, append([]string{"--mysql-dsn", db.DSN(), "--body-grace", "100ms",
		"--log-level", "info", "--window", "16", "--quota", "0"}, extra...)...)
	bob := r.ua("1001")
	in := collect(t, bob)
	register(t, bob)
	return r, in
}

// TestMirrorHoldsEveryMessageAndChange: 10,000 messages (2,000 under -race)
// through intake and delivery give exactly as many rows with their final state
// and every change once.
func TestMirrorHoldsEveryMessageAndChange(t *testing.T) {
	t.Parallel() // its own MariaDB and sipsilo; mostly waiting on MySQL, so it overlaps the others
	db := mariadbtest.Start(t)
	d := openDB(t, db)
	r, in := mirrorRig(t, db)
	n := sized(10000, 2000)
	postMessages(t, r, 0, n)
	in.waitCount(t, n, 2*time.Minute)
	waitRows(t, d, n, time.Minute, "SELECT COUNT(*) FROM messages WHERE state = 'delivered'")
	// received, body (the query copy after the grace), delivered.
	waitRows(t, d, 3*n, time.Minute, "SELECT COUNT(*) FROM message_events")
	if c := count(t, d, "SELECT COUNT(*) FROM messages"); c != n {
		t.Fatalf("%d messages rows, want %d", c, n)
	}
	if c := count(t, d, "SELECT COUNT(*) FROM message_events WHERE kind = 'delivered'"); c != n {
		t.Fatalf("%d delivered events, want %d", c, n)
	}
	if c := count(t, d, "SELECT COUNT(*) FROM (SELECT message_id FROM message_events GROUP BY message_id HAVING COUNT(*) <> 3 OR MIN(seq) <> 1 OR MAX(seq) <> 3) x"); c != 0 {
		t.Fatalf("%d messages without exactly their 3 events", c)
	}
}

// TestMirrorSurvivesMariaDBDown: MariaDB stopped for 60 s under load; delivery
// goes on, and afterwards the backlog drains with nothing lost or doubled.
func TestMirrorSurvivesMariaDBDown(t *testing.T) {
	t.Parallel() // its own MariaDB and sipsilo; mostly waiting on MySQL, so it overlaps the others
	db := mariadbtest.Start(t)
	d := openDB(t, db)
	r, in := mirrorRig(t, db)
	postMessages(t, r, 0, 500)
	waitRows(t, d, 500, time.Minute, "SELECT COUNT(*) FROM messages WHERE state = 'delivered'")

	db.Stop()
	stopped := time.Now()
	sent := 500
	for time.Since(stopped) < 60*time.Second {
		postMessages(t, r, sent, 50)
		sent += 50
		time.Sleep(time.Second)
	}
	during := len(in.all())
	if during < sent-100 {
		t.Fatalf("delivery waited for MySQL: %d of %d delivered during the outage", during, sent)
	}
	db.Restart()
	in.waitCount(t, sent, time.Minute)
	waitRows(t, d, sent, 2*time.Minute, "SELECT COUNT(*) FROM messages WHERE state = 'delivered'")
	waitRows(t, d, 3*sent, time.Minute, "SELECT COUNT(*) FROM message_events")
	if c := count(t, d, "SELECT COUNT(*) FROM messages"); c != sent {
		t.Fatalf("%d rows, want %d", c, sent)
	}
}

// TestMirrorConvergesAfterKill9: sipsilo killed while the mirror drains a
// backlog; after the restart MySQL holds the same rows, each change once.
func TestMirrorConvergesAfterKill9(t *testing.T) {
	t.Parallel() // its own MariaDB and sipsilo; mostly waiting on MySQL, so it overlaps the others
	db := mariadbtest.Start(t)
	d := openDB(t, db)
	r, in := mirrorRig(t, db)
	const n = 3000
	postMessages(t, r, 0, n)
	// Kill while rows are still arriving.
	deadline := time.Now().Add(time.Minute)
	for count(t, d, "SELECT COUNT(*) FROM message_events") < n/2 {
		if time.Now().After(deadline) {
			t.Fatal("the mirror wrote nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = r.proc.cmd.Process.Signal(syscall.SIGKILL)
	r.proc.wait(t, 5*time.Second)
	r.start()
	in.waitCount(t, n, 2*time.Minute)
	waitRows(t, d, n, 2*time.Minute, "SELECT COUNT(*) FROM messages WHERE state = 'delivered'")
	waitRows(t, d, 3*n, time.Minute, "SELECT COUNT(*) FROM message_events")
	if c := count(t, d, "SELECT COUNT(*) FROM messages"); c != n {
		t.Fatalf("%d rows, want %d", c, n)
	}
}

// TestMirrorKeepsHostileBodiesExactly: bodies through FreeSWITCH's SIP side (so
// the exact ESL copy) reach MySQL byte for byte.
func TestMirrorKeepsHostileBodiesExactly(t *testing.T) {
	db := mariadbtest.Start(t)
	d := openDB(t, db)
	r := newRig(t, fsemu.SwitchOptions{}, "--mysql-dsn", db.DSN(), "--log-level", "info")
	alice, bob := r.ua("1000"), r.ua("1001")
	register(t, alice)
	register(t, bob)
	in := collect(t, bob)
	bodies := append([]string{"'; DROP TABLE messages; -- \\' \" \\\\ 🎉🚀 𝄞", string(bigBody(8000))}, hostileBodies...)
	for _, b := range bodies {
		send(t, alice, "1001", b)
	}
	in.waitCount(t, len(bodies), 10*time.Second)
	waitRows(t, d, len(bodies), time.Minute, "SELECT COUNT(*) FROM messages WHERE state = 'delivered'")
	for _, b := range bodies {
		if c := count(t, d, "SELECT COUNT(*) FROM messages WHERE body = ?", []byte(b)); c != 1 {
			t.Errorf("body %.40q: %d rows with it byte for byte", b, c)
		}
	}
}

func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "ab'\"\\%|x"[i%8]
	}
	return b
}
