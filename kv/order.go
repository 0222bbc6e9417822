package kv

import (
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// orderKeys hands out queue positions (docs/decisions.md §2). It keeps the time
// sipsilo first saw each FreeSWITCH Core-UUID in memory, loaded from the cores bucket
// at open; the writer persists a new one with the first message that carries it.
type orderKeys struct {
	mu    sync.Mutex
	cores map[string]int64 // Core-UUID → first-seen unix nanoseconds
	// stored holds the Core-UUIDs the cores bucket holds as committed: a
	// message of one of them needs no look-up there.
	stored map[string]bool
	// local breaks ties between messages without a Core-UUID received in the same
	// nanosecond; across restarts the intake time alone orders them.
	local atomic.Uint64
}

func loadOrderKeys(tx *bolt.Tx) *orderKeys {
	o := &orderKeys{cores: map[string]int64{}, stored: map[string]bool{}}
	if b := tx.Bucket(bucketCores); b != nil {
		b.ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				o.cores[string(k)] = int64(be64(v))
				o.stored[string(k)] = true
			}
			return nil
		})
	}
	return o
}

// key returns the position of a message: (first-seen time of its Core-UUID,
// Event-Sequence) for messages from FreeSWITCH, (intake time, counter) otherwise.
func (o *orderKeys) key(core string, seq uint64, received time.Time) OrderKey {
	if core == "" {
		return OrderKey{Epoch: received.UnixNano(), Seq: o.local.Add(1)}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	epoch, ok := o.cores[core]
	if !ok {
		epoch = received.UnixNano()
		o.cores[core] = epoch
	}
	return OrderKey{Epoch: epoch, Seq: seq}
}

// isStored reports whether core is in the cores bucket as last committed.
func (o *orderKeys) isStored(core string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stored[core]
}

// storedOnCommit notes core as stored once tx commits.
func (o *orderKeys) storedOnCommit(tx *bolt.Tx, core string) {
	tx.OnCommit(func() {
		o.mu.Lock()
		o.stored[core] = true
		o.mu.Unlock()
	})
}
