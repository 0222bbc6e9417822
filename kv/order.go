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
	// local breaks ties between messages without a Core-UUID received in the same
	// nanosecond; across restarts the intake time alone orders them.
	local atomic.Uint64
}

func loadOrderKeys(tx *bolt.Tx) *orderKeys {
	o := &orderKeys{cores: map[string]int64{}}
	if b := tx.Bucket(bucketCores); b != nil {
		b.ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				o.cores[string(k)] = int64(be64(v))
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
