package netaddr

import "testing"

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8484": true, "127.0.0.2:0": true, "[::1]:8484": true, "localhost:8484": true,
		":8484": false, "0.0.0.0:8484": false, "[::]:8484": false, "192.0.2.1:5060": false,
		"example.com:80": false, "127.0.0.1": false, "garbage": false, "": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
