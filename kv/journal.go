package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// The write-ahead journal in front of bbolt (docs/decisions.md §34). Records are
// appended to preallocated segment files and made durable with one fdatasync per
// group of records; bbolt stays the store of record and takes the records in
// large transactions later. A record is framed as
//
//	length uint32 | crc32c uint32 | seq uint64 | payload
//
// where the CRC covers the segment's number, the length, the seq and the payload,
// and seq numbers every record of the journal's life from 1 without gaps. A scan
// stops at the first frame that is short, zero, fails its CRC or breaks the
// sequence: a torn last record and a zeroed tail end the journal there, and the
// stale records of a recycled segment, renamed to a new number, fail the CRC.
const (
	frameHeader = 16
	// maxRecord bounds one record: a message is at most a few hundred KiB
	// (docs/decisions.md §27), far below it.
	maxRecord = 8 << 20
	// defaultSegmentSize is one segment file's preallocated size.
	defaultSegmentSize = 32 << 20
	segmentSuffix      = ".wal"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journalRecord is one record read back by a scan.
type journalRecord struct {
	seq     uint64
	payload []byte
}

// segment is one file of the journal.
type segment struct {
	n     uint64 // its number, from its name
	first uint64 // seq of its first record; 0: none yet
	path  string
}

// journal is the segment files in one directory. Only the store's writer
// goroutine calls its methods after openJournal.
type journal struct {
	dir     string
	segSize int64
	segs    []*segment // oldest first; the last is being appended to
	f       *os.File   // the last segment
	off     int64      // where the next record goes in f
	next    uint64     // seq of the next record
	spare   string     // a recycled or prepared segment file ready to become the next one
	maxN    uint64     // the highest segment number used
	buf     []byte
	syncs   uint64
	// cap is the current segment's size when it is not segSize (a segment
	// started before a full one was prepared); 0: segSize.
	cap int64
	// spares brings the files the store's sparer prepares ahead of need ("":
	// it failed; kv/journal_store.go).
	spares chan string
}

// inlineSegment is the most a segment started in an append's path
// preallocates when no prepared one is at hand: 32 MiB of zeros and a sync
// took 0.1–0.9 s on a busy disk, 1 MiB a few milliseconds; the sparer
// prepares full ones meanwhile.
const inlineSegment = 1 << 20

// room is the current segment's size.
func (j *journal) room() int64 {
	if j.cap > 0 {
		return j.cap
	}
	return j.segSize
}

// append writes payloads as the next records and makes them durable with one
// fdatasync (more only when they do not fit in one segment). It returns the seq
// of the last one. On error none of them counts: the caller fails every one, and
// the journal continues after what was durable before.
func (j *journal) append(payloads [][]byte) (last uint64, err error) {
	size := int64(0)
	for _, p := range payloads {
		if len(p) == 0 || len(p) > maxRecord || int64(frameHeader+len(p)) > j.segSize {
			return 0, fmt.Errorf("journal: record of %d bytes does not fit a segment of %d", len(p), j.segSize)
		}
		size += int64(frameHeader + len(p))
	}
	if j.f == nil {
		// None yet (made at the first append), or unwind could not reopen the
		// segment it went back to: appending starts the next one.
		if err := j.roll(size); err != nil {
			return 0, err
		}
	}
	// A group that does not fit where the segment ends starts the next one
	// before anything of it is written, so that a failure to start it leaves
	// nothing of the group on disk.
	if j.off+size > j.room() && j.off > 0 {
		if err := j.roll(size); err != nil {
			return 0, err
		}
	}
	startSeg, startOff, startNext := len(j.segs)-1, j.off, j.next
	defer func() {
		if err != nil {
			j.unwind(startSeg, startOff, startNext)
		}
	}()
	j.buf = j.buf[:0]
	for _, p := range payloads {
		if j.off+int64(len(j.buf)+frameHeader+len(p)) > j.room() {
			// Only a group larger than a segment gets here.
			if err := j.flush(); err != nil {
				return 0, err
			}
			if err := j.roll(int64(frameHeader + len(p))); err != nil {
				return 0, err
			}
		}
		j.buf = appendFrame(j.buf, j.segs[len(j.segs)-1].n, j.next, p)
		if sg := j.segs[len(j.segs)-1]; sg.first == 0 {
			sg.first = j.next
		}
		j.next++
	}
	if err := j.flush(); err != nil {
		return 0, err
	}
	return j.next - 1, nil
}

// unwind takes back a failed append that began in segment index seg at off with
// seq next: frames of it that reached the disk are zeroed (a record whose caller
// saw an error must not be replayed), and appending resumes where it began.
func (j *journal) unwind(seg int, off int64, next uint64) {
	j.buf = j.buf[:0]
	for i := len(j.segs) - 1; i > seg; i-- {
		// Segments the group rolled into: their frames are all the group's.
		if f, err := os.OpenFile(j.segs[i].path, os.O_RDWR, 0); err == nil {
			f.WriteAt(make([]byte, frameHeader), 0)
			fdatasync(f)
			f.Close()
		}
	}
	if len(j.segs)-1 > seg {
		j.f.Close()
		f, err := os.OpenFile(j.segs[seg].path, os.O_RDWR, 0)
		if err != nil {
			j.f = nil
		} else {
			j.f = f
		}
		for _, sg := range j.segs[seg+1:] {
			os.Remove(sg.path)
		}
		j.segs = j.segs[:seg+1]
	}
	if j.f != nil {
		// The first frame's header zeroed ends a scan before any of the group.
		j.f.WriteAt(make([]byte, frameHeader), off)
		fdatasync(j.f)
	}
	if sg := j.segs[seg]; sg.first >= next {
		sg.first = 0
	}
	j.off, j.next = off, next
}

func appendFrame(b []byte, segNo, seq uint64, p []byte) []byte {
	var h [frameHeader]byte
	n := uint32(len(p))
	binary.LittleEndian.PutUint32(h[0:], n)
	binary.LittleEndian.PutUint64(h[8:], seq)
	b = append(b, h[:]...)
	b = append(b, p...)
	binary.LittleEndian.PutUint32(b[len(b)-len(p)-frameHeader+4:], frameCRC(segNo, b[len(b)-len(p)-8:])^n)
	return b
}

// frameCRC is the CRC of a frame's seq and payload (rest), salted with the
// number of the segment it is written in.
func frameCRC(segNo uint64, rest []byte) uint32 {
	var salt [8]byte
	binary.LittleEndian.PutUint64(salt[:], segNo)
	return crc32.Update(crc32.Checksum(salt[:], crcTable), crcTable, rest)
}

// flush writes the buffered frames at j.off and syncs them.
func (j *journal) flush() error {
	if len(j.buf) == 0 {
		return nil
	}
	if _, err := j.f.WriteAt(j.buf, j.off); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.syncs++
	j.off += int64(len(j.buf))
	j.buf = j.buf[:0]
	return nil
}

// roll starts the next segment: the spare if there is one (its stale records
// end a scan by their seq), else a new file preallocated with zeros, of at
// most inlineSegment bytes unless need, what must fit in it, is more. Written
// zeros rather than fallocate's unwritten extents, so that an fdatasync after
// an append has no block allocation to record.
func (j *journal) roll(need int64) error {
	if j.spare == "" && j.spares != nil {
		select {
		case j.spare = <-j.spares: // "" when the sparer failed
		default:
		}
	}
	n := j.maxN + 1
	path := filepath.Join(j.dir, fmt.Sprintf("%016x%s", n, segmentSuffix))
	size := j.segSize
	if j.spare != "" {
		if err := os.Rename(j.spare, path); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.spare = ""
	} else {
		size = min(j.segSize, max(inlineSegment, need))
		tmp := path + ".tmp"
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		err = preallocate(f, 0, size)
		f.Close()
		if err != nil {
			os.Remove(tmp)
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("journal: %w", err)
		}
	}
	if err := syncDir(j.dir); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	if fi, err := f.Stat(); err == nil && fi.Size() < j.segSize {
		size = fi.Size() // a spare of an earlier size
	}
	j.f, j.off, j.cap = f, 0, size
	j.maxN = n
	j.segs = append(j.segs, &segment{n: n, path: path})
	return nil
}

// spareName is the file a segment is prepared in ahead of need (prepareSpare);
// like a segment being preallocated, it is removed at open.
const spareName = "spare" + segmentSuffix + ".tmp"

// wantsSpare reports whether the next segment should be prepared now: there is
// no spare, and none or half of the current segment is left.
func (j *journal) wantsSpare() bool {
	return j.spare == "" && len(j.spares) == 0 && (j.f == nil || j.off >= j.room()/2)
}

// prepareSpare preallocates the next segment's file beside the journal, off
// the appender's path (it holds no lock of the journal's while it writes), and
// offers it as the spare: roll then only renames it. A failure (a full disk)
// leaves things as they were: roll preallocates then, as without it.
func prepareSpare(dir string, size int64) (string, error) {
	path := filepath.Join(dir, spareName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("journal: %w", err)
	}
	err = preallocate(f, 0, size)
	f.Close()
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// preallocate writes zeros from off to size and syncs the file.
func preallocate(f *os.File, off, size int64) error {
	zeros := make([]byte, 1<<20)
	for off < size {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("journal: preallocate: %w", err)
		}
		off += n
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: preallocate: %w", err)
	}
	return nil
}

// release frees the segments whose records are all at or below applied, which
// bbolt holds durably: one is kept as the spare, the others are removed.
// checkpoint, if set, is called first with applied, before anything is freed.
func (j *journal) release(applied uint64, checkpoint func(uint64) error) error {
	if !j.releasable(applied) {
		return nil
	}
	if checkpoint != nil {
		if err := checkpoint(applied); err != nil {
			return err
		}
	}
	for len(j.segs) > 1 && j.segs[1].first != 0 && j.segs[1].first <= applied+1 {
		old := j.segs[0]
		j.segs = j.segs[1:]
		if fi, err := os.Stat(old.path); j.spare == "" && err == nil && fi.Size() >= j.segSize {
			j.spare = old.path // a short one (started inline) is not kept
			continue
		}
		if err := os.Remove(old.path); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return nil
}

// releasable reports whether release(applied) would free a segment.
func (j *journal) releasable(applied uint64) bool {
	return len(j.segs) >= 2 && j.segs[1].first != 0 && j.segs[1].first <= applied+1
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
