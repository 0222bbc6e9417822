package kv

import (
	"bytes"
	"fmt"
)

// The walk of checkFile over bbolt's B+trees: every page once, every element
// inside its page, keys in the order bbolt's own consistency check demands.

// tree checks the B+tree rooted at page id: every key of it must lie in [lo, hi)
// (nil: unbounded), as bbolt's own consistency check demands.
func (c *checker) tree(id uint64, lo, hi []byte, depth, nesting int) error {
	if c.par.failed() {
		return errStopped // another walker found the file damaged
	}
	if depth > maxTreeDepth {
		return corrupt("tree deeper than %d pages at page %d", maxTreeDepth, id)
	}
	b, err := c.page(id)
	if err != nil {
		return err
	}
	switch f := ne.Uint16(b[8:]); f {
	case flagLeaf:
		return c.leaf(b, id, lo, hi, nesting)
	case flagBranch:
		return c.branch(b, id, lo, hi, depth, nesting)
	default:
		return corrupt("page %d in a tree has type %#x", id, f)
	}
}

// elements returns the count of p's elements after checking their headers fit.
func elements(p []byte, where string) (int, error) {
	n := int(ne.Uint16(p[10:]))
	if pageHeaderSize+n*elemSize > len(p) {
		return 0, corrupt("%s: %d elements do not fit %d bytes", where, n, len(p))
	}
	return n, nil
}

// span returns p[off+pos : off+pos+n] when it lies inside p.
func span(p []byte, off int, pos, n uint64) ([]byte, bool) {
	start := uint64(off) + pos
	if start > uint64(len(p)) || n > uint64(len(p))-start {
		return nil, false
	}
	return p[start : start+n], true
}

func inOrder(k, prev, lo, hi []byte, first bool) bool {
	if first && lo != nil && bytes.Compare(k, lo) < 0 {
		return false
	}
	if !first && bytes.Compare(prev, k) >= 0 {
		return false
	}
	return hi == nil || bytes.Compare(k, hi) < 0
}

func (c *checker) branch(p []byte, id uint64, lo, hi []byte, depth, nesting int) error {
	where := fmt.Sprintf("branch page %d", id)
	n, err := elements(p, where)
	if err != nil {
		return err
	}
	if n == 0 {
		return corrupt("%s has no elements", where)
	}
	keys, kids := make([][]byte, n), make([]uint64, n)
	for i := range n {
		off := pageHeaderSize + i*elemSize
		k, ok := span(p, off, uint64(ne.Uint32(p[off:])), uint64(ne.Uint32(p[off+4:])))
		if !ok {
			return corrupt("%s: element %d outside the page", where, i)
		}
		if len(k) == 0 {
			return corrupt("%s: key %d is empty", where, i) // bbolt asserts on it: a panic
		}
		if !inOrder(k, keys[max(i-1, 0)], lo, hi, i == 0) {
			return corrupt("%s: key %d out of order", where, i)
		}
		keys[i], kids[i] = k, ne.Uint64(p[off+8:])
	}
	for i, kid := range kids {
		next := hi
		if i+1 < n {
			next = keys[i+1]
		}
		// A child goes to an idle walker if there is one, else it is walked here.
		lo := keys[i]
		err := c.par.run(func() error { return c.tree(kid, lo, next, depth+1, nesting) })
		if err != nil {
			return err
		}
	}
	return nil
}

// leaf checks a leaf page (of the file, or inline in a bucket value) and the
// buckets it holds.
func (c *checker) leaf(p []byte, id uint64, lo, hi []byte, nesting int) error {
	where := fmt.Sprintf("leaf page %d", id)
	n, err := elements(p, where)
	if err != nil {
		return err
	}
	var prev []byte
	for i := range n {
		off := pageHeaderSize + i*elemSize
		flags, ksz, vsz := ne.Uint32(p[off:]), uint64(ne.Uint32(p[off+8:])), uint64(ne.Uint32(p[off+12:]))
		kv, ok := span(p, off, uint64(ne.Uint32(p[off+4:])), ksz+vsz)
		if !ok {
			return corrupt("%s: element %d outside the page", where, i)
		}
		k, v := kv[:ksz], kv[ksz:]
		if len(k) == 0 {
			return corrupt("%s: key %d is empty", where, i) // bbolt asserts on it: a panic
		}
		if !inOrder(k, prev, lo, hi, i == 0) {
			return corrupt("%s: key %d out of order", where, i)
		}
		prev = k
		if flags&leafBucket == 0 {
			continue
		}
		if err := c.bucket(v, fmt.Sprintf("%s element %d", where, i), nesting+1); err != nil {
			return err
		}
	}
	return nil
}

// bucket checks a bucket value: a root page id, or (root 0) an inline leaf page.
func (c *checker) bucket(v []byte, where string, nesting int) error {
	if nesting > maxNesting {
		return corrupt("%s: buckets nested deeper than %d", where, maxNesting)
	}
	if len(v) < bucketHdrSize {
		return corrupt("%s: bucket header of %d bytes", where, len(v))
	}
	root := ne.Uint64(v)
	if root != 0 {
		return c.tree(root, nil, nil, 0, nesting)
	}
	inline := v[bucketHdrSize:]
	if len(inline) < pageHeaderSize || ne.Uint16(inline[8:]) != flagLeaf {
		return corrupt("%s: inline bucket is not a leaf page", where)
	}
	// bbolt reads the inline page in place and needs it 8-byte aligned; a
	// copy costs nothing here and keeps the offsets relative to the page.
	return c.leaf(bytes.Clone(inline), 0, nil, nil, nesting)
}
