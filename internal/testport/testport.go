// Package testport picks loopback ports for test servers that must be told
// their port before they bind it (a switch's config, a child process's flag).
//
// A port the kernel hands out for 127.0.0.1:0 is in its ephemeral range, the
// same range every outgoing connection takes its local port from; between
// the pick and the server's bind, a burst of connections elsewhere on the
// machine (a benchmark, FreeSWITCH's xml_curl posts) can take it, and the
// server fails with "address already in use". Ports below that range are
// never handed out implicitly, so only another explicit pick can collide.
package testport

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the first port considered: clear of the well-known and most
// registered services' ports.
const lowest = 10000

// Free returns a port of 127.0.0.1 outside the kernel's ephemeral range that
// was free for both TCP and UDP a moment ago.
func Free() (int, error) {
	lo, hi := ephemeral()
	span := lo - lowest // below the range
	base := lowest
	if span < 1000 { // a range reaching down low: use what lies above it
		base, span = hi+1, 65535-hi
	}
	if span <= 0 {
		return 0, fmt.Errorf("testport: no ports outside the ephemeral range %d-%d", lo, hi)
	}
	for range 200 {
		port := base + rand.IntN(span)
		if free(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("testport: no free port in %d-%d after 200 tries", base, base+span-1)
}

// Addr is Free as "127.0.0.1:port".
func Addr() (string, error) {
	p, err := Free()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

func free(port int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// ephemeral is the kernel's ephemeral port range (Linux's default when it
// cannot be read).
func ephemeral() (lo, hi int) {
	lo, hi = 32768, 60999
	f, err := os.Open("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 {
			a, err1 := strconv.Atoi(fs[0])
			b, err2 := strconv.Atoi(fs[1])
			if err1 == nil && err2 == nil && 0 < a && a <= b && b <= 65535 {
				return a, b
			}
		}
	}
	return lo, hi
}
