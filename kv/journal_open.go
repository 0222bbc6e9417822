package kv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// openJournal opens (creating) dir and scans its segments. It returns the
// records with seq > after, in order; records up to after are already in bbolt.
func openJournal(dir string, segSize int64, after uint64) (*journal, []journalRecord, error) {
	if segSize <= 0 {
		segSize = defaultSegmentSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{dir: dir, segSize: segSize}
	// A segment being preallocated when the process ended.
	if tmps, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix+".tmp")); err == nil {
		for _, p := range tmps {
			os.Remove(p)
		}
	}
	out, free, endOff, err := j.scan(after)
	if err != nil {
		return nil, nil, err
	}
	for _, sg := range free {
		if j.spare == "" {
			j.spare = sg.path
			continue
		}
		if err := os.Remove(sg.path); err != nil {
			return nil, nil, fmt.Errorf("journal: %w", err)
		}
	}
	if len(j.segs) == 0 {
		// The first segment is made by the first append: opening needs no
		// space, so that a full disk fails writes, visibly, rather than the
		// start (docs/decisions.md §34).
		return j, out, nil
	}
	tail := j.segs[len(j.segs)-1]
	f, err := os.OpenFile(tail.path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j.f, j.off = f, endOff
	// A segment shorter than a segment (cut short, or made with a smaller
	// size) is not grown: appending starts the next one, so that an append
	// never changes a file's size and opening never needs space.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	if fi.Size() < j.segSize {
		j.off = j.segSize
	}
	return j, out, nil
}

// segScan is what scanning one segment found: the seqs of its first and last
// valid records (n of them) and the offset after the last one.
type segScan struct {
	first, last uint64
	n           int
	end         int64
}

// scanSegment reads the valid records of segment number segNo from its start
// and returns those with seq > after, copied. It streams the file through a
// small buffer: a segment is 32 MiB, mostly records bbolt holds already, and
// reading it whole would make start-up cost its size in memory (docs/decisions.md
// §35, "Memory"). It stops at the first record that is not valid (a zeroed,
// torn or older tail).
func scanSegment(path string, segNo, after uint64) (sc segScan, recs []journalRecord, err error) {
	f, err := os.Open(path)
	if err != nil {
		return sc, nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [frameHeader]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break // the end of the file, or of what it holds
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n == 0 || n > maxRecord {
			break
		}
		if cap(buf) < frameHeader-8+int(n) {
			buf = make([]byte, frameHeader-8+int(n))
		}
		frame := buf[:frameHeader-8+int(n)] // seq and payload: what the CRC covers
		copy(frame, hdr[8:])
		if _, err := io.ReadFull(r, frame[8:]); err != nil {
			break
		}
		seq := binary.LittleEndian.Uint64(hdr[8:])
		if frameCRC(segNo, frame) != binary.LittleEndian.Uint32(hdr[4:])^n {
			break
		}
		if sc.n > 0 && seq != sc.last+1 {
			break
		}
		if sc.n == 0 {
			sc.first = seq
		}
		sc.last, sc.n = seq, sc.n+1
		sc.end += frameHeader + int64(n)
		if seq > after {
			recs = append(recs, journalRecord{seq: seq, payload: bytes.Clone(frame[8:])})
		}
	}
	return sc, recs, nil
}

// scan reads dir's segments without changing them: it sets j's chain, next and
// maxN, and returns the records after after, the segments off the chain and the
// offset after the chain's last record.
func (j *journal) scan(after uint64) (out []journalRecord, free []*segment, endOff int64, err error) {
	dir := j.dir
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("journal: %w", err)
	}
	var all []*segment
	for _, p := range names {
		n, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), segmentSuffix), 16, 64)
		if err != nil {
			continue // not ours
		}
		all = append(all, &segment{n: n, path: p})
	}
	slices.SortFunc(all, func(a, b *segment) int { return cmpU64(a.n, b.n) })

	// The chain is the run of segments, each continuing the sequence of the one
	// before, that ends at the newest segment with records. Older segments off
	// the chain hold only records bbolt has (released ones not yet removed).
	scanned := make([]segScan, len(all))
	unapplied := make([][]journalRecord, len(all))
	last := -1
	for i, sg := range all {
		j.maxN = max(j.maxN, sg.n)
		sc, recs, err := scanSegment(sg.path, sg.n, after)
		if err != nil {
			return nil, nil, 0, err
		}
		scanned[i], unapplied[i] = sc, recs
		if sc.n > 0 {
			last = i
		}
	}
	first := last
	for first > 0 && scanned[first-1].n > 0 && scanned[first-1].last+1 == scanned[first].first {
		first--
	}
	for i, sg := range all {
		if last < 0 || i < first || i > last {
			free = append(free, sg)
			continue
		}
		sg.first = scanned[i].first
		j.segs = append(j.segs, sg)
		j.next = scanned[i].last + 1
		endOff = scanned[i].end
		out = append(out, unapplied[i]...)
	}
	if j.next == 0 || j.next <= after {
		// An empty journal, or bbolt is ahead of it (the journal was removed):
		// numbering continues after what bbolt holds.
		j.next = after + 1
		for _, sg := range j.segs {
			free = append(free, sg)
		}
		j.segs, endOff, out = nil, 0, nil
	}
	return out, free, endOff, nil
}

// unappliedRecords returns the records of the journal beside path that the
// file's applied position does not cover, without changing anything (for a
// read-only open).
func unappliedRecords(path string, applied uint64) ([]journalRecord, error) {
	dir := path + ".journal"
	if _, err := os.Stat(dir); err != nil {
		return nil, nil
	}
	out, _, _, err := (&journal{dir: dir}).scan(applied)
	return out, err
}

// The checkpoint file says up to which record a bbolt file durably held the
// journal when segments were last recycled: 8 bytes BE, then their CRC32C.
const checkpointName = "checkpoint"

func writeCheckpoint(dir string, applied uint64) error {
	b := binary.BigEndian.AppendUint64(nil, applied)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	tmp := filepath.Join(dir, checkpointName+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, checkpointName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("journal: checkpoint: %w", err)
	}
	return syncDir(dir)
}

// readCheckpoint returns the checkpoint, 0 when there is none.
func readCheckpoint(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], crcTable) != binary.BigEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("journal: checkpoint: %w", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}
