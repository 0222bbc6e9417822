package astreal

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
		tarball = findTarball()
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

// findTarball looks in the working directory and every directory above it for
// shared/asterisk/runtime/asterisk-*.tar.xz.
func findTarball() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for range 32 { // bounded: a path has fewer levels than this
		m, _ := filepath.Glob(filepath.Join(dir, "shared", "asterisk", "runtime", "asterisk-*.tar.xz"))
		if len(m) > 0 {
			return m[len(m)-1]
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
	return ""
}

// unpack extracts tarball into <cache>/sipsilo-ast-<sha256 prefix> unless
// another test process already did; a lock file keeps parallel test
// processes from unpacking at once.
func unpack(tarball string) (Home, error) {
	sum, err := fileSHA256(tarball)
	if err != nil {
		return Home{}, err
	}
	cache, err := os.UserCacheDir()
	if err != nil || os.MkdirAll(cache, 0o755) != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sipsilo-ast-"+sum[:16])
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
	if out, err := exec.Command("tar", "-xJf", tarball, "-C", tmp, "--strip-components=1").CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return Home{}, fmt.Errorf("astreal: unpack %s: %v\n%s", tarball, err, out)
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

// Available says whether an Asterisk can be run, without starting one.
func Available() error {
	_, err := findHome()
	return err
}
