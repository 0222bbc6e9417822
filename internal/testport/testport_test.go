package testport

import (
	"net"
	"strconv"
	"testing"
)

// Free gives a port outside the ephemeral range that a server can then bind,
// for TCP and for UDP.
func TestFreeIsOutsideTheEphemeralRangeAndBindable(t *testing.T) {
	lo, hi := ephemeral()
	for range 20 {
		p, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if p >= lo && p <= hi || p < lowest || p > 65535 {
			t.Fatalf("port %d, ephemeral range %d-%d", p, lo, hi)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatal(err)
		}
		if free(p) {
			t.Fatalf("port %d reported free while bound", p)
		}
		ln.Close()
		pc.Close()
	}
}
