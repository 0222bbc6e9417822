package e2e

// The two ways the event socket can fail for good, as a user meets them: a
// password FreeSWITCH can never accept, and one it refuses.

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
)

// SIPSILO_ESL_PASSWORD=$'ClueCon\n' (a stray newline from a secrets file) can
// never be sent in FreeSWITCH's one-line auth command: serve stops at once with
// a message naming the setting and exits 1, instead of listening unready forever.
func TestServeStopsOnAnESLPasswordFreeSWITCHCanNeverAccept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve", "--http", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "s.db"))
	cmd.Env = append(os.Environ(), "SIPSILO_ESL_PASSWORD=ClueCon\n")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("serve with a newline in the ESL password: %v, want exit code 1\n%s", err, out)
	}
	if s := string(out); !strings.Contains(s, "sipsilo: serve: --esl/--esl-password (SIPSILO_ESL_PASSWORD)") ||
		!strings.Contains(s, "CR or LF") || strings.Contains(s, "msg=listening") {
		t.Fatalf("output does not name the setting, or serve listened:\n%s", s)
	}
}

// A password FreeSWITCH refuses (it answers -ERR invalid) is logged at ERROR and
// named by /readyz; serve keeps retrying and stops cleanly.
func TestServeNamesARefusedESLPassword(t *testing.T) {
	sw, err := fsemu.NewSwitch(fsemu.SwitchOptions{ESL: fsemu.ESLOptions{Password: "right"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Close() })
	c := startChild(t, nil, "--db", filepath.Join(t.TempDir(), "s.db"), "--esl", sw.ESL().Addr(), "--esl-password", "wrong")
	c.waitLog(t, "refused the event socket password", 10*time.Second)
	res, err := http.Get("http://" + c.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "ESL authentication refused") {
		t.Fatalf("/readyz %d %s, want 503 naming the refusal", res.StatusCode, b)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, c.log())
	}
}
