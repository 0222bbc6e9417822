package kv

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEnqueue measures durable enqueues (fsync included) with N concurrent
// callers sharing the writer's group commits.
func BenchmarkEnqueue(b *testing.B) { benchEnqueue(b, false) }

// BenchmarkEnqueueJournal is BenchmarkEnqueue with the write-ahead journal
// (docs/decisions.md §34); msgs/sync counts the journal's fdatasyncs.
func BenchmarkEnqueueJournal(b *testing.B) { benchEnqueue(b, true) }

func benchEnqueue(b *testing.B, journal bool) {
	for _, callers := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{Journal: journal})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			body := []byte("hello, this is a typical short message ü")
			var next atomic.Int64
			c0, w0 := s.Commits(), pagesWritten(s)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						m := &Message{From: "1000@127.0.0.1", To: "1001@127.0.0.1", CoreUUID: "bdcc48b6-f5fb-4c75-ab1b-a0d810059303",
							EventSeq: uint64(i), Body: body, BodySource: BodyQuery, ContentType: "text/plain",
							FromFull: "<sip:1000@127.0.0.1>;tag=i0xnc8q3", Profile: "internal", Context: "public"}
						if _, err := s.Enqueue(context.Background(), m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(max(1, s.Commits()-c0)), "msgs/commit")
			// Pages written per message: what a commit costs the disk, whatever the load.
			b.ReportMetric(float64(pagesWritten(s)-w0)/float64(b.N), "pages/msg")
			if journal {
				b.ReportMetric(float64(b.N)/float64(max(1, s.JournalSyncs())), "msgs/sync")
			}
		})
	}
}

// pagesWritten is the count of pages bbolt has written since Open.
func pagesWritten(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}
