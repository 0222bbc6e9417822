package fsreal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
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
		tarball = findTarball()
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

// findTarball looks in the working directory and every directory above it for
// shared/freeswitch/runtime/freeswitch-*.tar.xz (CI runs a fresh clone with a
// copy of shared/ beside it; a developer's checkout sits beside it too).
func findTarball() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for range 32 { // bounded: a path has fewer levels than this
		m, _ := filepath.Glob(filepath.Join(dir, "shared", "freeswitch", "runtime", "freeswitch-*.tar.xz"))
		if len(m) > 0 {
			return m[0]
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
	return ""
}

// unpack extracts tarball into <cache>/sipsilo-fs-<sha256 prefix> unless
// another test process already did; a lock file keeps parallel test
// processes (go test runs packages in parallel) from unpacking at once.
func unpack(tarball string) (Home, error) {
	sum, err := fileSHA256(tarball)
	if err != nil {
		return Home{}, err
	}
	cache, err := os.UserCacheDir()
	if err != nil || os.MkdirAll(cache, 0o755) != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sipsilo-fs-"+sum[:16])
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Home{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Home{}, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if h, err := homeAt(dir); err == nil {
		return h, nil
	}
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return Home{}, err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Home{}, err
	}
	if out, err := exec.Command("tar", "-xJf", tarball, "-C", tmp).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return Home{}, fmt.Errorf("fsreal: unpack %s: %v\n%s", tarball, err, out)
	}
	if err := os.RemoveAll(dir); err != nil {
		return Home{}, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Home{}, err
	}
	return homeAt(dir)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Available says whether a FreeSWITCH can be run, without starting one: nil,
// or why not (a test then skips, or fails under
// SIPSILO_REQUIRE_INTEGRATION=1, when it calls Start).
func Available() error {
	_, err := findHome()
	return err
}
