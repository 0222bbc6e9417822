package daemon

import (
	"io"
	"strings"
	"testing"
)

// TestNewAsteriskNeedsItsSettings: --pbx asterisk without the direct path
// would never deliver, and without AMI would never know who is reachable:
// New refuses both, and an unknown --pbx.
func TestNewAsteriskNeedsItsSettings(t *testing.T) {
	base := testConfig(t, "127.0.0.1:9", "ClueCon")
	base.PBX = PBXAsterisk
	base.Asterisk = AsteriskConfig{AMIAddr: "127.0.0.1:9", AMIUser: "sipsilo", AMISecret: "x", Domain: "pbx.example"}
	base.Ping = PingConfig{Mode: "direct", Direct: true}
	if _, err := New(base, io.Discard); err != nil {
		t.Fatalf("a complete configuration: %v", err)
	}
	for name, c := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"ping off":     {func(c *Config) { c.Ping.Mode = "off" }, "direct path"},
		"no direct":    {func(c *Config) { c.Ping.Direct = false }, "direct path"},
		"no AMI":       {func(c *Config) { c.Asterisk.AMIAddr = "" }, "--ami"},
		"no domain":    {func(c *Config) { c.Asterisk.Domain = "" }, "--ast-domain"},
		"unknown pbx":  {func(c *Config) { c.PBX = "yate" }, "--pbx"},
		"a bad esl pw": {func(c *Config) { c.PBX = PBXFreeSWITCH; c.ESLPassword = "a\nb" }, "--esl"},
	} {
		cfg := base
		c.change(&cfg)
		if _, err := New(cfg, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Beside Asterisk the ESL password plays no part.
	cfg := base
	cfg.ESLPassword = "a\nb"
	if _, err := New(cfg, io.Discard); err != nil {
		t.Fatalf("ESL password refused beside Asterisk: %v", err)
	}
}
