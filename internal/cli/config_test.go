package cli

import (
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseServeDefaults(t *testing.T) {
	cfg, err := parseServe(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:8484" || cfg.DBPath != "./sipsilo.db" || cfg.ESLAddr != "127.0.0.1:8021" ||
		cfg.ESLPassword != "ClueCon" || cfg.Chatplan.Domains != nil || cfg.LogLevel != slog.LevelInfo ||
		cfg.Chatplan.AnswerTimeout != 500*time.Millisecond || cfg.Chatplan.MaxBody != 64<<10 {
		t.Fatalf("defaults: %+v", cfg)
	}
	want := []string{"application/im-iscomposing+xml", "message/imdn+xml"}
	if !reflect.DeepEqual(cfg.Chatplan.SkipTypes, want) {
		t.Fatalf("skip types %v", cfg.Chatplan.SkipTypes)
	}
	r := cfg.Relay
	if !reflect.DeepEqual(cfg.Profiles, []string{"internal"}) || cfg.BodyGrace != 2*time.Second ||
		r.Window != 16 || r.DirectWindow != 0 || r.MaxInFlight != 256 || r.Settle != 20*time.Millisecond || r.DeadAfter != 5 ||
		r.RetryMin != time.Second || r.RetryMax != 5*time.Minute || r.NoAnswerAfter != 15*time.Second ||
		r.TimerF != 32*time.Second || cfg.DeviceMemory != 7*24*time.Hour {
		t.Fatalf("delivery defaults: %+v %v %v", r, cfg.Profiles, cfg.BodyGrace)
	}
}

func TestParseServeEnvAndFlagPrecedence(t *testing.T) {
	e := env(map[string]string{
		"SIPSILO_HTTP":           "127.0.0.1:9000",
		"SIPSILO_ESL_PASSWORD":   "from-env",
		"SIPSILO_DOMAINS":        " a.example , b.example ,",
		"SIPSILO_LOG_LEVEL":      "debug",
		"SIPSILO_SKIP_TYPES":     "",
		"SIPSILO_DB":             "/from/env.db",
		"SIPSILO_MAX_BODY":       "1024",
		"SIPSILO_ANSWER_TIMEOUT": "200ms",
	})
	cfg, err := parseServe([]string{"--db", "/from/flag.db"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:9000" || cfg.ESLPassword != "from-env" || cfg.DBPath != "/from/flag.db" ||
		cfg.LogLevel != slog.LevelDebug || cfg.Chatplan.MaxBody != 1024 || cfg.Chatplan.AnswerTimeout != 200*time.Millisecond {
		t.Fatalf("cfg: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.Chatplan.Domains, []string{"a.example", "b.example"}) {
		t.Fatalf("domains %q", cfg.Chatplan.Domains)
	}
	if cfg.Chatplan.SkipTypes == nil || len(cfg.Chatplan.SkipTypes) != 0 {
		t.Fatalf("empty SIPSILO_SKIP_TYPES must store every type, got %v", cfg.Chatplan.SkipTypes)
	}
}

func TestParseServeRejectsBadValues(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--max-body", "-1"}, nil},
		{[]string{"--log-format", "xml"}, nil},
		{[]string{"stray"}, nil},
		{[]string{"--window", "0"}, nil},
		{[]string{"--direct-window", "-1"}, nil},
		{[]string{"--device-memory", "0s"}, nil},
		{[]string{"--retry-min", "10s", "--retry-max", "1s"}, nil},
		{nil, map[string]string{"SIPSILO_BODY_GRACE": "0s"}},
		{nil, map[string]string{"SIPSILO_ANSWER_TIMEOUT": "soon"}},
		{nil, map[string]string{"SIPSILO_LOG_LEVEL": "loud"}},
	}
	for _, c := range cases {
		if _, err := parseServe(c.args, env(c.env), io.Discard); err == nil {
			t.Errorf("args %v env %v: no error", c.args, c.env)
		}
	}
}
