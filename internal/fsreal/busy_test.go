package fsreal

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestRealFSBusySIPPort: when profile internal's port is taken, the start
// fails fast with a reason instead of waiting out the start timeout.
func TestRealFSBusySIPPort(t *testing.T) {
	h, err := findHome()
	if err != nil {
		requireIntegration(t, err.Error())
	}
	p, err := freePorts()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p.sip))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dir, err := os.MkdirTemp("", "fsreal-")
	if err != nil {
		t.Fatal(err)
	}
	f := &FS{t: t, home: h, dir: dir, p: p}
	defer os.RemoveAll(dir)
	if err := writeConf(f.ConfDir(), Options{}, p); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = f.start()
	f.Kill()
	t.Logf("after %v: %v\n%s", time.Since(start), err, f.LogTail(30))
	if err == nil {
		t.Fatal("started on a taken SIP port")
	}
}
