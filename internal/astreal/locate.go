package astreal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/sipsilo/sipsilo/internal/runtimetar"
)

// Home is an Asterisk installation the tests can run: sbin/asterisk and the
// module directory.
type Home struct {
	Dir    string // the prefix: sbin/, lib/, share/
	Binary string // Dir/sbin/asterisk
	Mods   string // Dir/lib/asterisk/modules
	Data   string // Dir/share/asterisk
}

var (
	homeOnce sync.Once
	home     Home
	homeErr  error
)

// errAbsent says that no Asterisk was found; the test skips (or fails under
// SIPSILO_REQUIRE_INTEGRATION=1).
var errAbsent = errors.New("astreal: no Asterisk")

func findHome() (Home, error) {
	homeOnce.Do(func() { home, homeErr = locate() })
	return home, homeErr
}

// locate returns SIPSILO_AST_HOME (an unpacked runtime or an installed
// prefix), else the runtime tarball named by SIPSILO_AST_TARBALL or found
// beside the checkout (shared/asterisk/runtime/asterisk-*.tar.xz in this
// directory or any above it), unpacked once into the user's cache directory.
func locate() (Home, error) {
	if dir := os.Getenv("SIPSILO_AST_HOME"); dir != "" {
		return homeAt(dir)
	}
	tarball := os.Getenv("SIPSILO_AST_TARBALL")
	if tarball == "" {
		tarball = runtimetar.FindUpward("shared/asterisk/runtime/asterisk-*.tar.xz")
	}
	if tarball == "" {
		return Home{}, fmt.Errorf("%w: set SIPSILO_AST_HOME to an Asterisk 22 prefix (sbin/asterisk, lib/asterisk/modules) "+
			"or SIPSILO_AST_TARBALL to the runtime tarball; none found beside the checkout (shared/asterisk/runtime/)", errAbsent)
	}
	return unpack(tarball)
}

func homeAt(dir string) (Home, error) {
	h := Home{Dir: dir, Binary: filepath.Join(dir, "sbin", "asterisk"),
		Mods: filepath.Join(dir, "lib", "asterisk", "modules"), Data: filepath.Join(dir, "share", "asterisk")}
	if _, err := os.Stat(h.Binary); err != nil {
		return Home{}, fmt.Errorf("%w: SIPSILO_AST_HOME=%s: %v", errAbsent, dir, err)
	}
	if _, err := os.Stat(filepath.Join(h.Mods, "chan_pjsip.so")); err != nil {
		return Home{}, fmt.Errorf("%w: no chan_pjsip.so under %s", errAbsent, h.Mods)
	}
	return h, nil
}

func unpack(tarball string) (Home, error) {
	dir, err := runtimetar.Unpack(tarball, "sipsilo-ast", []string{"--strip-components=1"}, func(dir string) bool {
		_, err := homeAt(dir)
		return err == nil
	})
	if err != nil {
		return Home{}, fmt.Errorf("astreal: %w", err)
	}
	return homeAt(dir)
}

// Available says whether an Asterisk can be run, without starting one.
func Available() error {
	_, err := findHome()
	return err
}
