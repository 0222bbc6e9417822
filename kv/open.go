package kv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// openChecked opens and locks the database file the way bbolt would, then checks it
// (checkFile) before bbolt sees it; bbolt is handed the same, already locked file.
// A path that does not exist becomes a new store; an existing empty file only with
// o.NewStore, since an empty file where a store was expected is a loss to report,
// not a store to start afresh.
func openChecked(path string, o Options) (*os.File, error) {
	open := o.OpenFile
	if open == nil {
		open = os.OpenFile
	}
	flag, fresh := os.O_RDWR, false
	if o.ReadOnly {
		flag = os.O_RDONLY
	} else if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		flag, fresh = flag|os.O_CREATE, true
	}
	f, err := open(path, flag, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		return nil, err
	}
	if err := lockFile(f, !o.ReadOnly, o.LockTimeout); err != nil {
		return fail(openError(path, err))
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", path, err))
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("open %s: not a regular file", path))
	}
	if fi.Size() == 0 {
		if (fresh || o.NewStore) && !o.ReadOnly {
			return f, nil
		}
		return fail(fmt.Errorf("open %s: %w (0 bytes): a store that lost its contents, or a failed restore? "+
			"Restore the file, or start a new empty store in it with --new-store", path, ErrEmpty))
	}
	if err := checkOpenFile(f, fi.Size()); err != nil {
		return fail(fmt.Errorf("open %s: %w", path, err))
	}
	return f, nil
}
