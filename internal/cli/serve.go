package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/sipsilo/sipsilo/internal/daemon"
)

// runServe is `sipsilo serve`: flags, environment and file into a daemon.Config
// (config.go), then the daemon until ctx ends.
func runServe(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stderr io.Writer) error {
	cfg, err := parseServe(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	cfg.Version = versionString()
	d, err := daemon.New(cfg, stderr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return d.Run(ctx)
}
