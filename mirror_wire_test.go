package main

import (
	"testing"
	"time"
)

func TestMySQLConfigFromDSN(t *testing.T) {
	cfg, err := mysqlConfig("u:p@tcp(127.0.0.1:3307)/hist?readTimeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.ParseTime || cfg.Loc != time.UTC || cfg.Timeout != 5*time.Second || cfg.ReadTimeout != 2*time.Second ||
		cfg.WriteTimeout != 30*time.Second || cfg.Addr != "127.0.0.1:3307" || cfg.DBName != "hist" {
		t.Fatalf("%+v", cfg)
	}
	if _, err := mysqlConfig("not a dsn"); err == nil {
		t.Fatal("a malformed DSN was accepted")
	}
}
