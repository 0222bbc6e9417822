package mariadbtest

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, cfg *mysql.Config) *sql.DB {
	t.Helper()
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// Ensure a server can be used, stopped, restarted and crashed, and that
// its files go away with the test.
func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	cfg := s.DSNConfig()
	cfg.Logger = &mysql.NopLogger{} // the failures while down are expected
	db := open(t, cfg)
	ctx := context.Background()

	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(16)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (?, ?)", 1, "one"); err != nil {
		t.Fatal(err)
	}
	if got, want := s.DSN(), cfg.FormatDSN(); got != want {
		t.Errorf("DSN()=%q, want %q", got, want)
	}

	s.Stop()
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(qctx, "SELECT COUNT(*) FROM t").Scan(&n); err == nil {
		t.Fatal("query succeeded while the server was stopped")
	}

	s.Restart()
	count := func() int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("after restart: %v", err)
		}
		return n
	}
	if got, want := count(), 1; got != want {
		t.Fatalf("rows=%d, want %d", got, want)
	}

	// A committed row survives a crash (innodb_flush_log_at_trx_commit=1).
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (?, ?)", 2, "two"); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	s.Restart()
	if got, want := count(), 2; got != want {
		t.Fatalf("rows after crash=%d, want %d", got, want)
	}
	if _, err := os.Stat(s.dir); err != nil {
		t.Fatalf("datadir gone before cleanup: %v", err)
	}
}

// Ensure the user has no rights outside its database.
func TestUserIsConfined(t *testing.T) {
	s := Start(t)
	db := open(t, s.DSNConfig())
	if _, err := db.Exec("CREATE DATABASE other"); err == nil {
		t.Fatal("sipsilo could create another database")
	}
}
