package main

import (
	"errors"
	"io"
)

// runFSConfig is `sipsilo fs-config`.
func runFSConfig(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	return errors.New("fs-config: not implemented yet")
}
