package astreal

import (
	"net"
	"os"
	"strconv"
	"testing"
)

// TestRealAsteriskBusySIPPort: when the SIP port is taken, the start fails
// with a reason instead of returning an Asterisk that does not listen there.
func TestRealAsteriskBusySIPPort(t *testing.T) {
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
	dir, err := os.MkdirTemp("/tmp", "ast-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	a := &Ast{t: t, home: h, dir: dir, p: p}
	if err := a.writeConf(); err != nil {
		t.Fatal(err)
	}
	err = a.start()
	a.Kill()
	t.Logf("%v\n%s", err, a.LogTail(10))
	if err == nil {
		t.Fatal("started on a taken SIP port")
	}
}
