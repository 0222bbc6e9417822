package cli

import (
	"io"
	"testing"
)

// TestParseServeAcceptsChatplanCredentialsOrTheOptOut: off loopback, serve needs
// chatplan credentials or the explicit --chatplan-open; on loopback neither
// (internal/e2e's TestServeRefusesAnOpenChatplanOffLoopback runs the refusal
// through the binary).
func TestParseServeAcceptsChatplanCredentialsOrTheOptOut(t *testing.T) {
	for _, extra := range [][]string{{"--chatplan-password", "p"}, {"--chatplan-open"}} {
		args := append([]string{"--http", "192.0.2.1:8484", "--admin-token", "t"}, extra...)
		if _, err := parseServe(args, func(string) (string, bool) { return "", false }, io.Discard); err != nil {
			t.Errorf("%v: %v", extra, err)
		}
	}
	if _, err := parseServe([]string{"--http", "127.0.0.1:0"}, func(string) (string, bool) { return "", false }, io.Discard); err != nil {
		t.Errorf("loopback without credentials: %v", err)
	}
}
