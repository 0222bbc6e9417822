// Package runtimetar finds and unpacks the prebuilt PBX runtimes that the
// integration harnesses (internal/fsreal, internal/astreal) run: a tarball
// beside the checkout, unpacked once per machine into the user's cache.
package runtimetar

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// FindUpward looks in the working directory and every directory above it for
// files matching glob (a pattern relative to each, e.g.
// "shared/freeswitch/runtime/freeswitch-*.tar.xz") and returns the last match
// in name order, the newest version; "" when there is none. CI runs a fresh
// clone with a copy of shared/ beside it; a developer's checkout sits beside it
// too.
func FindUpward(glob string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for range 32 { // bounded: a path has fewer levels than this
		m, _ := filepath.Glob(filepath.Join(dir, glob))
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

// Unpack extracts tarball (with tar's extra arguments, e.g.
// --strip-components=1) into <cache>/<prefix>-<sha256 prefix> and returns that
// directory, unless ready says an earlier unpack is already there. A lock file
// keeps parallel test processes (go test runs packages in parallel) from
// unpacking at once; a half-done unpack is never taken for a finished one.
func Unpack(tarball, prefix string, tarArgs []string, ready func(dir string) bool) (string, error) {
	sum, err := fileSHA256(tarball)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil || os.MkdirAll(cache, 0o755) != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, prefix+"-"+sum[:16])
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if ready(dir) {
		return dir, nil
	}
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	args := append([]string{"-xJf", tarball, "-C", tmp}, tarArgs...)
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("unpack %s: %v\n%s", tarball, err, out)
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
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
