package e2e

// The Asterisk rig: the sipsilo binary with --pbx asterisk beside a real
// Asterisk 22 (internal/astreal) whose message context is sipsilo's rendered
// one, and real SIP user agents, all on 127.0.0.1.

import (
	"path/filepath"
	"testing"
	"time"

	asteriskconf "github.com/sipsilo/sipsilo/asterisk-conf"
	"github.com/sipsilo/sipsilo/internal/astreal"
	"github.com/sipsilo/sipsilo/internal/fsemu"
)

type astRig struct {
	*rig
	ast *astreal.Ast
}

// newAstRig starts Asterisk pointed at sipsilo's port, then sipsilo.
func newAstRig(t testing.TB, args ...string) *astRig {
	t.Helper()
	r := &astRig{rig: &rig{t: t, db: filepath.Join(t.TempDir(), "sipsilo.db"), http: freePort(t)}}
	r.ast = astreal.Start(t, astreal.Options{Sipsilo: &asteriskconf.Options{HTTPAddr: r.http}})
	r.args = append([]string{"--pbx", "asterisk", "--http", r.http, "--db", r.db, "--ami", r.ast.AMIAddr(),
		"--ami-secret", r.ast.AMISecret(), "--ast-domain", "127.0.0.1", "--log-level", "debug"}, args...)
	r.start()
	return r
}

func (r *astRig) ua(user string) *fsemu.UA {
	r.t.Helper()
	return newUA(r.t, r.ast.SIPAddr(), user)
}

// waitStored waits until sipsilo's intake has owned n messages in all.
func (r *astRig) waitStored(n int, within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := scrape(r.t, r.rig).value("sipsilo_intake_seconds", "answer", "final", "why", "stored")
		if int(v) >= n {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%v messages owned after %v, want %d\n%s", v, within, n, r.proc.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDetected waits until sipsilo has found a registration unreachable
// (sipsilo_detection_seconds, whatever found it).
func (r *astRig) waitDetected(within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var n uint64
		if mf := scrape(r.t, r.rig)["sipsilo_detection_seconds"]; mf != nil {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no unreachable registration found within %v\n%s", within, r.proc.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
