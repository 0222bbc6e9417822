package fsreal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/sipsilo/sipsilo/internal/runtimetar"
)

// Home is a FreeSWITCH installation the tests can run: bin/freeswitch and the
// module directory.
type Home struct {
	Dir    string // the prefix, e.g. /usr/local/freeswitch
	Binary string // Dir/bin/freeswitch
	Mods   string // the module directory (lib/freeswitch/mod, or mod)
}

var (
	homeOnce sync.Once
	home     Home
	homeErr  error
)

// errAbsent says that no FreeSWITCH was found; the test skips (or fails under
// SIPSILO_REQUIRE_INTEGRATION=1).
var errAbsent = errors.New("fsreal: no FreeSWITCH")

// findHome returns the FreeSWITCH to run, once per test process:
// SIPSILO_FS_HOME (an installed prefix), else the runtime tarball named by
// SIPSILO_FS_TARBALL or found beside the checkout (shared/freeswitch/runtime/
// freeswitch-*.tar.xz in this directory or any above it), unpacked once into
// the user's cache directory.
func findHome() (Home, error) {
	homeOnce.Do(func() { home, homeErr = locate() })
	return home, homeErr
}

func locate() (Home, error) {
	if dir := os.Getenv("SIPSILO_FS_HOME"); dir != "" {
		return homeAt(dir)
	}
	tarball := os.Getenv("SIPSILO_FS_TARBALL")
	if tarball == "" {
		tarball = runtimetar.FindUpward("shared/freeswitch/runtime/freeswitch-*.tar.xz")
	}
	if tarball == "" {
		return Home{}, fmt.Errorf("%w: set SIPSILO_FS_HOME to an installed FreeSWITCH 1.10 (bin/freeswitch, lib/freeswitch/mod) "+
			"or SIPSILO_FS_TARBALL to the runtime tarball; none found beside the checkout (shared/freeswitch/runtime/)", errAbsent)
	}
	return unpack(tarball)
}

// homeAt checks an installed prefix.
func homeAt(dir string) (Home, error) {
	h := Home{Dir: dir, Binary: filepath.Join(dir, "bin", "freeswitch")}
	if _, err := os.Stat(h.Binary); err != nil {
		return Home{}, fmt.Errorf("%w: SIPSILO_FS_HOME=%s: %v", errAbsent, dir, err)
	}
	for _, m := range []string{filepath.Join(dir, "lib", "freeswitch", "mod"), filepath.Join(dir, "mod")} {
		if _, err := os.Stat(filepath.Join(m, "mod_sofia.so")); err == nil {
			h.Mods = m
			return h, nil
		}
	}
	return Home{}, fmt.Errorf("%w: no mod_sofia.so under %s/lib/freeswitch/mod or %s/mod", errAbsent, dir, dir)
}

func unpack(tarball string) (Home, error) {
	dir, err := runtimetar.Unpack(tarball, "sipsilo-fs", nil, func(dir string) bool {
		_, err := homeAt(dir)
		return err == nil
	})
	if err != nil {
		return Home{}, fmt.Errorf("fsreal: %w", err)
	}
	return homeAt(dir)
}

// Available says whether a FreeSWITCH can be run, without starting one: nil,
// or why not (a test then skips, or fails under
// SIPSILO_REQUIRE_INTEGRATION=1, when it calls Start).
func Available() error {
	_, err := findHome()
	return err
}
