// Package netaddr holds sipsilo's one loopback test for listen and contact
// addresses.
package netaddr

import "net"

// IsLoopback reports whether addr (host:port) is on a loopback interface:
// localhost, 127.0.0.0/8 or ::1. An empty host, 0.0.0.0 or :: listens
// everywhere, and anything that does not parse is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
