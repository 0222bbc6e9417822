// Package cli is sipsilo's command line: the subcommands serve, inspect,
// fs-config, check-fs, ast-config, check-ast and version, their flags, the
// SIPSILO_* environment and the TOML file. Each command lives in its own file with its own test; serve hands
// its configuration to internal/daemon.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrUsage is returned for a command line sipsilo cannot run (unknown command,
// missing arguments); main exits 2 on it.
var ErrUsage = errUsage

var errUsage = errors.New("usage")

const usage = `sipsilo: store-and-forward for SIP MESSAGE beside FreeSWITCH or Asterisk

Usage:
  sipsilo serve [flags]        run the daemon (sipsilo serve -h lists flags)
  sipsilo inspect <view> ...   read a stopped daemon's database (sipsilo inspect -h)
  sipsilo fs-config --out DIR  write the FreeSWITCH configuration sipsilo needs
  sipsilo check-fs [flags]     check a running FreeSWITCH over ESL and say what to fix
  sipsilo ast-config --out DIR write the Asterisk configuration sipsilo needs
  sipsilo check-ast [flags]    check a running Asterisk over AMI and say what to fix
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
		return runServe(ctx, args[1:], os.LookupEnv, stderr)
	case "inspect":
		return runInspect(ctx, args[1:], stdout, stderr)
	case "fs-config":
		return runFSConfig(args[1:], os.LookupEnv, stdout, stderr)
	case "check-fs":
		return runCheckFS(ctx, args[1:], os.LookupEnv, stdout, stderr)
	case "ast-config":
		return runASTConfig(args[1:], os.LookupEnv, stdout, stderr)
	case "check-ast":
		return runCheckAST(ctx, args[1:], os.LookupEnv, stdout, stderr)
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
