package kv

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fillQueue puts n queue entries spread over recipients straight into the queue
// bucket (counted as Enqueue counts them), in large transactions: the scrape reads
// only queue keys, and going through Enqueue would spend minutes on fsyncs to
// build the same pages.
func fillQueue(tb testing.TB, s *Store, n, recipients int, received time.Time) {
	tb.Helper()
	ids := newIDSource()
	const perTx = 50_000
	for done := 0; done < n; {
		err := s.db.Update(func(tx *bolt.Tx) error {
			q := tx.Bucket(bucketQueue)
			q.FillPercent = 1.0
			for i := 0; i < perTx && done < n; i, done = i+1, done+1 {
				aor := fmt.Sprintf("%d@example.org", 100000+done%recipients)
				at := received.Add(time.Duration(done) * time.Millisecond)
				k, err := queueKey(aor, OrderKey{Epoch: at.UnixNano(), Seq: uint64(done)}, ids.next(at))
				if err != nil {
					return err
				}
				if err := q.Put(k, queueValue); err != nil {
					return err
				}
				if err := s.queueMoved(tx, aor, StateQueued); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkQueueStats measures one scrape's queue figures with many messages
// queued. Results: BENCHMARKS.md ("/metrics scrape").
func BenchmarkQueueStats(b *testing.B) {
	for _, c := range []struct{ n, recipients int }{
		{100_000, 1_000}, {1_000_000, 1_000}, {1_000_000, 100_000},
	} {
		b.Run(fmt.Sprintf("queued=%d/recipients=%d", c.n, c.recipients), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			fillQueue(b, s, c.n, c.recipients, time.Now().Add(-time.Hour))
			b.ResetTimer()
			for b.Loop() {
				st, err := s.QueueStats()
				if err != nil || st.Depth != c.n || st.Recipients != c.recipients {
					b.Fatalf("%+v %v", st, err)
				}
			}
		})
	}
}

// BenchmarkOutboxStats measures the mirror backlog figures with a large backlog
// (MySQL down for a while).
func BenchmarkOutboxStats(b *testing.B) {
	const n = 1_000_000
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{Outbox: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	rec := []byte(`{"id":"01JFQ8Z5T6W3M9K0B2C4D6E8F0","event_seq":1,"kind":"received","at":"2026-11-26T09:00:00Z","message":{}}`)
	for done := 0; done < n; {
		err := s.db.Update(func(tx *bolt.Tx) error {
			o := tx.Bucket(bucketOutbox)
			o.FillPercent = 1.0
			for i := 0; i < 100_000; i, done = i+1, done+1 {
				seq, err := o.NextSequence()
				if err != nil {
					return err
				}
				if err := o.Put(u64(seq), rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		st, err := s.OutboxStats()
		if err != nil || st.Records != n {
			b.Fatalf("%+v %v", st, err)
		}
	}
}

// BenchmarkLoadDepths measures what Open spends counting each recipient's queue
// (for the quota and /metrics) with a million messages queued.
func BenchmarkLoadDepths(b *testing.B) {
	const n, recipients = 1_000_000, 1_000
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	fillQueue(b, s, n, recipients, time.Now().Add(-time.Hour))
	b.ResetTimer()
	for b.Loop() {
		err := s.db.View(func(tx *bolt.Tx) error {
			d, err := loadDepths(tx)
			if err == nil && (d.total() != n || len(d.n) != recipients) {
				err = fmt.Errorf("counted %d in %d recipients", d.total(), len(d.n))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
