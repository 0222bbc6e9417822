package kv

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// The store's file is memory-mapped by bbolt, and every page a reader or the
// writer touches stays mapped into this process: it counts in RSS although it is
// only the kernel's page cache, shared and reclaimable. A full scan (the file
// check, a resync, body fallbacks over a long queue) would leave RSS at the
// file's size — a million queued messages, ≈ 450 MB. The trimmer drops the
// mappings whenever they exceed a budget (docs/decisions.md §35, "Memory").
const (
	defaultTrimBudget = 64 << 20
	trimEvery         = 250 * time.Millisecond
)

// runTrim keeps the store's mapped pages within budget until the store closes.
func (s *Store) runTrim(budget int64) {
	defer close(s.trimDone)
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			if mappedBytes() > budget {
				if err := s.trimMapping(); err != nil {
					s.log.Warn("cannot drop the store's mapped pages", "err", err)
				}
			}
		}
	}
}

// trimMapping drops the process's mappings of the store's file pages. It runs
// inside a read transaction, which holds bbolt's map in place (a remap waits
// for every reader), so the range is bbolt's current map and nothing else.
func (s *Store) trimMapping() error {
	return s.db.View(func(tx *bolt.Tx) error {
		return dropMapped(s.db.Info().Data, tx.Size())
	})
}
