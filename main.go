// Command sipsilo makes SIP MESSAGE reliable beside FreeSWITCH: it takes each message
// over from FreeSWITCH's chatplan, stores it durably and delivers it when the
// recipient's device can confirm it. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "sipsilo:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `sipsilo: store-and-forward for SIP MESSAGE beside FreeSWITCH

Usage:
  sipsilo serve [flags]        run the daemon (sipsilo serve -h lists flags)
  sipsilo inspect <view> ...   read a stopped daemon's database (sipsilo inspect -h)
  sipsilo fs-config --out DIR  write the FreeSWITCH configuration sipsilo needs
  sipsilo check-fs [flags]     check a running FreeSWITCH over ESL and say what to fix
  sipsilo version              print the version and build information
`

// Main runs one sipsilo command; main only adds signals and the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		cfg, err := parseServe(args[1:], os.LookupEnv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stderr)
	case "inspect":
		return runInspect(ctx, args[1:], stdout, stderr)
	case "fs-config":
		return runFSConfig(args[1:], os.LookupEnv, stdout, stderr)
	case "check-fs":
		return runCheckFS(ctx, args[1:], os.LookupEnv, stdout, stderr)
	case "version":
		printVersion(stdout)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "sipsilo: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
