package main

import (
	"context"
	"errors"
	"io"
)

// runCheckFS is `sipsilo check-fs`.
func runCheckFS(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	return errors.New("check-fs: not implemented yet")
}
