package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/sipsilo/sipsilo/esl"
)

// checkFS holds one `sipsilo check-fs` run: the settings, the ESL client and the
// tally of what failed.
type checkFS struct {
	eslAddr, eslPassword string
	profile              string
	httpAddr             string // sipsilo's --http, for the direct probe; "" skips it
	timeout              time.Duration

	cli    *esl.Client
	out    io.Writer
	failed int
}

// runCheckFS is `sipsilo check-fs`: it logs in to FreeSWITCH's event socket with
// sipsilo's own ESL client and checks what sipsilo needs, one line per check,
// saying which file and line to change for each failure. It fails when any
// check failed.
func runCheckFS(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	c := &checkFS{out: stdout}
	fs := flag.NewFlagSet("sipsilo check-fs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.eslAddr, "esl", "127.0.0.1:8021", "FreeSWITCH event socket address (env SIPSILO_ESL)")
	fs.StringVar(&c.eslPassword, "esl-password", "ClueCon", "event socket password (prefer env SIPSILO_ESL_PASSWORD)")
	fs.StringVar(&c.profile, "profile", "internal", "sofia profile phones register to")
	fs.StringVar(&c.httpAddr, "http", "", "address sipsilo serve listens on, to tell a stopped sipsilo from a wrong binding (env SIPSILO_HTTP)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "bound on connecting and on each check")
	if err := setFromEnv(fs, lookupEnv, envNames("esl", "esl-password", "http")); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("check-fs: unexpected argument %q", fs.Arg(0))
	}
	if c.timeout <= 0 {
		return errors.New("check-fs: --timeout must be positive")
	}
	return c.run(ctx)
}

func (c *checkFS) run(ctx context.Context) error {
	c.cli = esl.New(esl.Config{
		Addr: c.eslAddr, Password: c.eslPassword,
		Subscription: "event plain HEARTBEAT", // the event connection is the client's; nothing here reads it
		DialTimeout:  c.timeout, CommandTimeout: c.timeout,
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.cli.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	if !c.connect(ctx) {
		return errors.New("check-fs: cannot log in to FreeSWITCH's event socket")
	}
	c.checkModules(ctx)
	c.checkBinding(ctx)
	c.checkContext(ctx)
	c.checkPing(ctx)
	if c.failed > 0 {
		return fmt.Errorf("check-fs: %d check(s) failed", c.failed)
	}
	fmt.Fprintln(c.out, "all checks passed")
	return nil
}

// ok, fail and skip print one result line; fix lines follow a failure.
func (c *checkFS) ok(format string, a ...any) { fmt.Fprintf(c.out, "ok    "+format+"\n", a...) }

func (c *checkFS) skip(format string, a ...any) { fmt.Fprintf(c.out, "skip  "+format+"\n", a...) }

func (c *checkFS) fail(what string, fixes ...string) {
	c.failed++
	fmt.Fprintln(c.out, "FAIL  "+what)
	for _, f := range fixes {
		fmt.Fprintln(c.out, "      fix: "+f)
	}
}

// api runs one API command under --timeout.
func (c *checkFS) api(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.cli.API(ctx, cmd)
}

// connect waits for the command connection by running a harmless command, and
// explains a failure with the client's last dial error.
func (c *checkFS) connect(ctx context.Context) bool {
	_, err := c.api(ctx, "module_exists mod_event_socket")
	if err == nil || errors.Is(err, esl.ErrCommand) { // logged in; module_exists may be missing
		c.ok("esl: logged in to %s", c.eslAddr)
		return true
	}
	// The client retries a failed connection rather than returning; Err says
	// why the last attempt failed.
	cause := c.cli.Err()
	if errors.Is(cause, esl.ErrNotConnected) {
		cause = nil // no attempt failed yet: FreeSWITCH did not answer in time
	}
	switch {
	case cause != nil && errors.Is(cause, syscall.ECONNREFUSED):
		c.fail("esl: connection refused at "+c.eslAddr,
			"is FreeSWITCH running? mod_event_socket listens where <param name=\"listen-ip\"> and <param name=\"listen-port\"> "+
				"in autoload_configs/event_socket.conf.xml say (restart FreeSWITCH after changing them); pass that address as --esl")
	case errors.Is(cause, esl.ErrAuthRefused):
		c.fail("esl: password refused by "+c.eslAddr,
			"--esl-password (env SIPSILO_ESL_PASSWORD) must equal <param name=\"password\"> in autoload_configs/event_socket.conf.xml; "+
				"sipsilo serve needs the same value")
	case cause != nil && strings.Contains(cause.Error(), "rude-rejection"):
		c.fail("esl: "+c.eslAddr+" refused this host (Access Denied)",
			"<param name=\"apply-inbound-acl\"> in autoload_configs/event_socket.conf.xml must admit this host's address (restart FreeSWITCH after changing it)")
	case cause != nil:
		c.fail(fmt.Sprintf("esl: cannot log in to %s within %v: %v", c.eslAddr, c.timeout, cause),
			"check --esl against listen-ip/listen-port in autoload_configs/event_socket.conf.xml")
	default:
		c.fail(fmt.Sprintf("esl: no answer from %s within %v (%v)", c.eslAddr, c.timeout, err),
			"is "+c.eslAddr+" FreeSWITCH's event socket? Check listen-ip/listen-port in autoload_configs/event_socket.conf.xml, or raise --timeout")
	}
	return false
}

func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
