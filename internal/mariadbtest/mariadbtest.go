// Package mariadbtest runs a throwaway MariaDB server for tests: a fresh
// datadir in a temporary directory, mariadbd listening on a free port of
// 127.0.0.1 (and a unix socket), a database "sipsilo" and a user
// sipsilo/sipsilo with all privileges on it. Tests can stop, restart and
// kill the server to play "MariaDB is down".
//
// The binaries come from Debian's mariadb-server-core (pulled in by
// mariadb-server): mariadbd (or mysqld) and mariadb-install-db (or
// mysql_install_db). Without them the test is skipped, or fails when
// SIPSILO_REQUIRE_INTEGRATION=1.
package mariadbtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sipsilo/sipsilo/internal/testport"
)

const (
	readyTimeout = 30 * time.Second // Start and Restart wait this long for connections
	stopTimeout  = 20 * time.Second // after SIGTERM, then SIGKILL

	// Database, User and Password are what DSNConfig connects with.
	Database = "sipsilo"
	User     = "sipsilo"
	Password = "sipsilo"
)

// Server is a running (or stopped) throwaway mariadbd, a child process of
// the test. Its methods are meant for the test goroutine.
type Server struct {
	t       testing.TB
	bin     string // mariadbd
	dir     string // datadir, socket, pid file and error log live here
	datadir string
	socket  string
	errLog  string
	port    int

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil while stopped
	done chan struct{} // closed once cmd has exited and been waited for
}

// Start initialises a datadir, starts mariadbd on a free port of 127.0.0.1
// and waits until it accepts connections. The server is stopped and its
// files removed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	server := lookPath("mariadbd", "mysqld")
	install := lookPath("mariadb-install-db", "mysql_install_db")
	if server == "" || install == "" {
		requireIntegration(t, "mariadbd or mariadb-install-db not installed (Debian package mariadb-server)")
	}
	// Not t.TempDir: the socket path must stay below 108 bytes, and test
	// names can be long.
	dir, err := os.MkdirTemp("", "mariadbtest-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: server, dir: dir,
		datadir: filepath.Join(dir, "data"),
		socket:  filepath.Join(dir, "sock"),
		errLog:  filepath.Join(dir, "error.log")}
	t.Cleanup(func() {
		s.Stop()
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("mariadbtest: %v", err)
		}
	})

	args := []string{"--no-defaults", "--datadir=" + s.datadir,
		"--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	// The rest goes to mariadbd --bootstrap: the same small InnoDB files as
	// at run time.
	args = append(args, s.engineArgs()...)
	out, err := exec.Command(install, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadbtest: %s: %v\n%s", filepath.Base(install), err, out)
	}

	// A port picked by binding and releasing it may be taken in between:
	// mariadbd then exits, and we try another.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		err = s.start()
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("mariadbtest: %v", err)
		}
	}
	if err := s.setup(); err != nil {
		t.Fatalf("mariadbtest: %v", err)
	}
	return s
}

// Addr returns the TCP address, 127.0.0.1:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// DSNConfig returns a fresh driver configuration for user sipsilo on
// database sipsilo over TCP.
func (s *Server) DSNConfig() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = User, Password
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", s.Addr(), Database
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Timeout = 2 * time.Second
	cfg.ReadTimeout = 30 * time.Second
	cfg.WriteTimeout = 30 * time.Second
	// The server's default; the client's (64 MiB) would be larger.
	cfg.MaxAllowedPacket = 16 << 20
	return cfg
}

// DSN returns DSNConfig as a DSN string.
func (s *Server) DSN() string { return s.DSNConfig().FormatDSN() }

// Stop stops the server (SIGTERM, then SIGKILL after 20 s) and keeps its
// datadir. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signal(syscall.SIGTERM, stopTimeout)
}

// Kill ends the server with SIGKILL, as in a crash; Restart recovers it.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signal(syscall.SIGKILL, stopTimeout)
}

// Restart starts the server again on the same port and datadir (stopping
// it first if it runs) and waits until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("mariadbtest: restart: %v", err)
	}
}

// signal sends sig and waits up to timeout for the exit, then kills. The
// caller holds mu.
func (s *Server) signal(sig syscall.Signal, timeout time.Duration) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.t.Errorf("mariadbtest: mariadbd did not exit within %v of %v; killing it", timeout, sig)
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// start runs mariadbd and waits until root can connect over the socket.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := append([]string{"--no-defaults",
		"--datadir=" + s.datadir,
		"--socket=" + s.socket,
		"--pid-file=" + filepath.Join(s.dir, "mariadbd.pid"),
		"--log-error=" + s.errLog,
		"--port=" + strconv.Itoa(s.port),
		"--bind-address=127.0.0.1",
		"--skip-networking=0",
		"--skip-name-resolve",
		"--performance-schema=OFF",
		"--skip-log-bin",
		"--max-connections=100",
	}, s.engineArgs()...)
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(); err != nil {
		s.signal(syscall.SIGKILL, stopTimeout)
		return fmt.Errorf("%w\n%s", err, s.logTail())
	}
	return nil
}

// waitReady polls the socket as root until a query succeeds. The caller
// holds mu.
func (s *Server) waitReady() error {
	cfg := s.rootConfig()
	cfg.Timeout = 500 * time.Millisecond
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-s.done:
			return errors.New("mariadbd exited during startup")
		default:
		}
		err := ping(cfg)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbd not ready after %v: %v", readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setup creates the database and the user DSNConfig connects as.
func (s *Server) setup() error {
	db, err := s.openRoot()
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, q := range []string{
		"CREATE DATABASE " + Database + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
		"CREATE USER '" + User + "'@'%' IDENTIFIED BY '" + Password + "'",
		"GRANT ALL PRIVILEGES ON " + Database + ".* TO '" + User + "'@'%'",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// rootConfig connects as root over the unix socket.
func (s *Server) rootConfig() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", s.socket
	cfg.Logger = &mysql.NopLogger{} // connection errors while starting are expected
	return cfg
}

func (s *Server) openRoot() (*sql.DB, error) {
	c, err := mysql.NewConnector(s.rootConfig())
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

func ping(cfg *mysql.Config) error {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// logTail returns the end of mariadbd's error log, for failure messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.errLog)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// engineArgs keep the server cheap: a small buffer pool and redo log.
// innodb_flush_log_at_trx_commit stays at its durable default (1).
// Temporary tables go to the server's own directory: concurrent bootstraps
// sharing /tmp collide on their names.
func (s *Server) engineArgs() []string {
	return []string{
		"--tmpdir=" + s.dir,
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=16M",
		"--innodb-data-file-path=ibdata1:12M:autoextend",
	}
}

func lookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) { return testport.Free() }

func requireIntegration(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("SIPSILO_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration test cannot run: %s", why)
	}
	t.Skip(why)
}
