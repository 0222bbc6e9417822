package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
	"os"
	"runtime"
	"sync/atomic"
)

// bbolt trusts the page structure it finds: opening a damaged file can panic in a
// goroutine nobody can recover (the free-page rebuild walks every tree), fault on a
// page beyond the end of the file, or recurse forever through a page that points to
// itself. checkFile validates, before bbolt sees the file, everything that walk and
// sipsilo's reads rely on: the meta pages with their checksums, the page size, the
// high-water mark against the file size, the free list, and every tree page reachable
// from the root (in range, of the right type, referenced once, elements inside the
// page, keys in order), with every loop bounded by the file's page count.
//
// The layout below is bbolt's (version 2), native-endian like bbolt itself.

const (
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elemSize       = 16 // leaf: flags, pos, ksize, vsize (u32); branch: pos, ksize (u32), pgid (u64)
	bucketHdrSize  = 16 // root pgid u64, sequence u64
	metaOffset     = pageHeaderSize
	metaSize       = 64 // through the checksum
	metaSumLen     = 56 // the checksum covers the meta up to itself

	boltMagic   = 0xED0CDAED
	boltVersion = 2

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagFreelist = 0x10

	leafBucket   = 0x01
	noFreelist   = ^uint64(0)
	minPageSize  = 1024
	maxPageSize  = 1 << 24 // the largest bbolt itself looks for
	maxTreeDepth = 64      // a B+tree of 2^64 pages is not deeper than this
	maxNesting   = 16      // buckets within buckets (sipsilo uses one level)
)

// ErrEmpty means the database file exists but holds nothing: bbolt would quietly
// make it a new store, hiding whatever was supposed to be in it.
var ErrEmpty = errors.New("database file is empty")

var ne = binary.NativeEndian

// Check validates the bbolt file at path without opening it with bbolt (see
// checkFile). It wraps ErrCorrupt when the file is damaged, ErrEmpty when it has
// no bytes.
func Check(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fmt.Errorf("%s: %w", path, ErrEmpty)
	}
	if err := checkOpenFile(f, fi.Size()); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// parseMeta reads the meta in the page starting at b and reports whether its magic,
// version and checksum are right.
func parseMeta(b []byte) (meta, bool) {
	if len(b) < metaOffset+metaSize {
		return meta{}, false
	}
	m := b[metaOffset : metaOffset+metaSize]
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[56:]) != h.Sum64() {
		return meta{}, false
	}
	return meta{
		pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]),
		pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:]),
	}, true
}

// checker walks one file; seen marks every page accounted for, so that each is
// visited once and the walk ends after at most hwm pages. Subtrees are walked by
// up to GOMAXPROCS goroutines (walk.go): most of the check's time is the first
// touch of each page, which the cores share.
type checker struct {
	r    io.ReaderAt
	data []byte // the whole file when it is in memory (mapped): pages are sliced, not read
	size int64
	ps   uint64
	hwm  uint64
	seen []atomic.Uint64 // bitset over [0, hwm)
	par  *parallel
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// checkFile validates a non-empty bbolt file of size bytes (see the top of this file).
func checkFile(r io.ReaderAt, size int64) error { return check(r, nil, size) }

// checkBytes is checkFile for a file held in memory.
func checkBytes(data []byte) error { return check(bytes.NewReader(data), data, int64(len(data))) }

func check(r io.ReaderAt, data []byte, size int64) error {
	if size < 2*minPageSize {
		return corrupt("%d bytes is too small for a bbolt file (truncated?)", size)
	}
	// The page size comes from the first meta page or, if that one is damaged, from
	// the second one found at a power-of-two offset: how bbolt finds it.
	ps, ok := uint64(0), false
	if m, valid := readMeta(r, 0); valid {
		ps, ok = uint64(m.pageSize), true
	} else {
		for i := 0; i <= 14 && int64(minPageSize)<<i < size-minPageSize; i++ {
			if m, valid := readMeta(r, int64(minPageSize)<<i); valid {
				ps, ok = uint64(m.pageSize), true
				break
			}
		}
	}
	if !ok {
		return corrupt("no valid meta page (not a bbolt file, or both meta pages damaged)")
	}
	if ps < minPageSize || ps > maxPageSize || bits.OnesCount64(ps) != 1 {
		return corrupt("page size %d", ps)
	}
	if uint64(size) < 2*ps {
		return corrupt("%d bytes is less than two %d-byte pages (truncated?)", size, ps)
	}
	// bbolt uses the valid meta with the higher transaction id.
	m0, ok0 := readMeta(r, 0)
	m1, ok1 := readMeta(r, int64(ps))
	var m meta
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case ok0:
		m = m0
	default:
		return corrupt("no valid meta page")
	}
	if uint64(m.pageSize) != ps {
		return corrupt("meta page size %d, file read with %d", m.pageSize, ps)
	}
	if m.pgid < 3 || m.pgid > uint64(size)/ps {
		return corrupt("%d pages of %d bytes do not fit the file's %d bytes (truncated?)", m.pgid, ps, size)
	}
	c := &checker{r: r, data: data, size: size, ps: ps, hwm: m.pgid, seen: make([]atomic.Uint64, (m.pgid+63)/64),
		par: newParallel(runtime.GOMAXPROCS(0) - 1)}
	c.mark(0, 0)
	c.mark(1, 0)
	var free []uint64
	if m.freelist != noFreelist {
		var err error
		if free, err = c.freelist(m.freelist); err != nil {
			return err
		}
	}
	if err := c.par.wait(c.tree(m.root, nil, nil, 0, 0)); err != nil {
		return err
	}
	for _, id := range free {
		if c.marked(id) {
			return corrupt("page %d is both free and in use", id)
		}
	}
	return nil
}

func readMeta(r io.ReaderAt, off int64) (meta, bool) {
	var b [metaOffset + metaSize]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return meta{}, false
	}
	// bbolt looks at the meta alone, not at the page's type: so must the choice
	// of meta here, or the check would vouch for another tree than bbolt reads.
	return parseMeta(b[:])
}

func (c *checker) marked(id uint64) bool { return c.seen[id/64].Load()&(1<<(id%64)) != 0 }

// mark records pages id..id+overflow as used, reporting a page used twice
// (whichever walker marks it second reports it).
func (c *checker) mark(id, overflow uint64) error {
	for i := id; i <= id+overflow; i++ {
		if c.seen[i/64].Or(1<<(i%64))&(1<<(i%64)) != 0 {
			return corrupt("page %d is referenced twice (a loop?)", i)
		}
	}
	return nil
}

// page reads page id with its overflow pages, after checking they lie below the
// high-water mark (which the file holds) and were not seen before.
func (c *checker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, corrupt("page %d out of range [2, %d)", id, c.hwm)
	}
	if c.data != nil {
		return c.slicePage(id)
	}
	b := make([]byte, c.ps)
	if _, err := c.r.ReadAt(b, int64(id*c.ps)); err != nil {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	overflow, err := c.header(id, b)
	if err != nil {
		return nil, err
	}
	if overflow > 0 {
		b = append(b, make([]byte, overflow*c.ps)...)
		if _, err := c.r.ReadAt(b[c.ps:], int64((id+1)*c.ps)); err != nil {
			return nil, fmt.Errorf("read page %d: %w", id, err)
		}
	}
	return b, nil
}

// header checks page id's header in b (its id, its overflow within the file)
// and marks the pages it spans; it returns the overflow count.
func (c *checker) header(id uint64, b []byte) (uint64, error) {
	if got := ne.Uint64(b[0:]); got != id {
		return 0, corrupt("page %d says it is page %d", id, got)
	}
	overflow := uint64(ne.Uint32(b[12:]))
	if overflow >= c.hwm-id {
		return 0, corrupt("page %d: %d overflow pages run past the last page %d", id, overflow, c.hwm-1)
	}
	return overflow, c.mark(id, overflow)
}

// slicePage is page for a file in memory: the same checks, no copy.
func (c *checker) slicePage(id uint64) ([]byte, error) {
	b := c.data[id*c.ps:]
	overflow, err := c.header(id, b)
	if err != nil {
		return nil, err
	}
	return b[: (overflow+1)*c.ps : (overflow+1)*c.ps], nil
}

func (c *checker) freelist(id uint64) ([]uint64, error) {
	b, err := c.page(id)
	if err != nil {
		return nil, fmt.Errorf("free list: %w", err)
	}
	if f := ne.Uint16(b[8:]); f != flagFreelist {
		return nil, corrupt("free list page %d has type %#x", id, f)
	}
	start, n := uint64(pageHeaderSize), uint64(ne.Uint16(b[10:]))
	if n == 0xFFFF { // the real count is the first element
		if len(b) < pageHeaderSize+8 {
			return nil, corrupt("free list page %d too short", id)
		}
		start, n = pageHeaderSize+8, ne.Uint64(b[pageHeaderSize:])
	}
	if n > (uint64(len(b))-start)/8 {
		return nil, corrupt("free list page %d: %d ids do not fit", id, n)
	}
	ids := make([]uint64, n)
	dup := make(map[uint64]bool, n)
	for i := range ids {
		ids[i] = ne.Uint64(b[start+uint64(i)*8:])
		if ids[i] < 2 || ids[i] >= c.hwm || dup[ids[i]] {
			return nil, corrupt("free list page %d: free page %d out of range or repeated", id, ids[i])
		}
		dup[ids[i]] = true
	}
	return ids, nil
}
