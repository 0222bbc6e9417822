// Command sipsilo makes SIP MESSAGE reliable beside FreeSWITCH: it takes each message
// over from FreeSWITCH's chatplan, stores it durably and delivers it when the
// recipient's device can confirm it. See README.md; the commands are in internal/cli.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sipsilo/sipsilo/internal/cli"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	cli.Version = version
	err := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, cli.ErrUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "sipsilo:", err)
		os.Exit(1)
	}
}
