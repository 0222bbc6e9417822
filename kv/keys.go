package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Bucket names. The layout is fixed from the first schema version so that later steps
// (relay, presence, mirror) fill buckets that already exist rather than migrating.
var (
	bucketMeta     = []byte("meta")     // "schema" → schema version; "ready" → Ping's scratch page
	bucketMessages = []byte("messages") // message id (ULID text) → JSON record
	bucketQueue    = []byte("queue")    // queueKey → empty (schema 2 and before: the message id), per-recipient FIFO
	bucketCores    = []byte("cores")    // FreeSWITCH Core-UUID → first-seen unix nanos (8 bytes BE)
	bucketReach    = []byte("reach")    // AOR → reachability record (presence)
	bucketOutbox   = []byte("outbox")   // 8-byte BE sequence → mirror event (mirror)
	bucketDepths   = []byte("depths")   // AOR → its queued messages (uvarint), kept with the queue (kv/quota.go)

	keySchema = []byte("schema")
	keyReady  = []byte("ready") // Ping's scratch value (a page of zeros)

	allBuckets = [][]byte{bucketMeta, bucketMessages, bucketQueue, bucketCores, bucketReach, bucketOutbox, bucketDepths}
)

// SchemaVersion is the on-disk layout version written to the meta bucket.
// Version 3 (docs/decisions.md §35) keeps each recipient's queue depth in the
// depths bucket, writes queue entries without a value (the key ends with the
// message id) and message records with room to grow (kv/record.go); a file of
// version 1 or 2 is migrated on its first read-write open (migrateDepths).
const SchemaVersion = 3

// schemaJSON is the version whose message records were all JSON; this
// sipsilo reads it and, on its first read-write open, marks the file
// SchemaVersion, since the records it writes are binary (kv/record.go): an
// older sipsilo then refuses the file by its version instead of failing on
// each new record.
const schemaJSON = 1

// maxAORLen bounds the recipient part of a queue key and maxCoreLen a Core-UUID
// key; bbolt keys must stay below 32 KiB and values this long are hostile anyway.
const (
	maxAORLen  = 1024
	maxCoreLen = 1024
)

// ErrUnstorable is wrapped by the errors for a write refused before it reaches
// the writer because a key would be too long for bbolt: inside the transaction it
// would fail the whole group commit.
var ErrUnstorable = errors.New("cannot be stored")

var (
	errAORTooLong  = fmt.Errorf("%w: recipient address too long", ErrUnstorable)
	errCoreTooLong = fmt.Errorf("%w: Core-UUID too long", ErrUnstorable)
)

// OrderKey positions a message in its recipient's queue (docs/decisions.md §2). For
// messages from FreeSWITCH, Epoch is the time sipsilo first saw the message's Core-UUID
// and Seq its Event-Sequence: FreeSWITCH's two chat threads reorder back-to-back
// messages on their way to the chatplan, but Event-Sequence keeps the send order.
// Messages without a Core-UUID (injected through the API) use the intake time and a
// counter of sipsilo's own.
type OrderKey struct {
	Epoch int64  // unix nanoseconds
	Seq   uint64 // Event-Sequence, or sipsilo's counter
}

// queueKey is len(aor) (2 bytes BE) | aor | epoch (8 BE) | seq (8 BE) | id. The length
// prefix makes a recipient's messages one contiguous, unambiguous key range whatever
// bytes the AOR holds; the id suffix keeps two messages with the same order key apart.
func queueKey(aor string, ok OrderKey, id string) ([]byte, error) {
	if len(aor) > maxAORLen {
		return nil, errAORTooLong
	}
	k := make([]byte, 0, 2+len(aor)+16+len(id))
	k = binary.BigEndian.AppendUint16(k, uint16(len(aor)))
	k = append(k, aor...)
	k = binary.BigEndian.AppendUint64(k, uint64(ok.Epoch))
	k = binary.BigEndian.AppendUint64(k, ok.Seq)
	return append(k, id...), nil
}

// queuePrefix is the key prefix shared by all of aor's queued messages.
func queuePrefix(aor string) []byte {
	k := make([]byte, 0, 2+len(aor))
	k = binary.BigEndian.AppendUint16(k, uint16(len(aor)))
	return append(k, aor...)
}

// parseQueueKey splits a queue key back into its parts (for inspection).
func parseQueueKey(k []byte) (aor string, ok OrderKey, id string, err error) {
	if len(k) < 2 {
		return "", ok, "", fmt.Errorf("queue key too short (%d bytes)", len(k))
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) < 2+n+16 {
		return "", ok, "", fmt.Errorf("queue key too short (%d bytes)", len(k))
	}
	aor = string(k[2 : 2+n])
	ok.Epoch = int64(binary.BigEndian.Uint64(k[2+n:]))
	ok.Seq = binary.BigEndian.Uint64(k[2+n+8:])
	return aor, ok, string(k[2+n+16:]), nil
}

// queueKeyID is the message id a queue key ends with (nil for a key too short
// to hold one). Readers take the id from the key: from schema 3 on the value is
// empty, and before it repeated the same id.
func queueKeyID(k []byte) []byte {
	if len(k) < 2 {
		return nil
	}
	n := 2 + int(binary.BigEndian.Uint16(k)) + 16
	if len(k) <= n {
		return nil
	}
	return k[n:]
}

// queueValue is what a queue entry holds: nothing, its key says it all.
var queueValue = []byte{}

// queueFill is the queue bucket's fill percent for Enqueue's splits. A new
// entry goes at the end of its recipient's range, which with many recipients is
// in the middle of a leaf: a leaf split full and a remainder then splits again
// at the next entry, and at 1.0 the leaves ended 25–46 % full (2,000 and 10,000
// recipients); at 0.75 they end 67 % full, 74 % for one recipient, whose
// entries are appended (docs/decisions.md §35).
const queueFill = 0.75

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// be64 reads an 8-byte big-endian number; a damaged value of another length reads
// as 0 instead of panicking.
func be64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
