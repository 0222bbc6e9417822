package kv

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkEnqueueWithQuota is BenchmarkEnqueue with the quota check on (a cap
// no recipient reaches) and messages spread over 1,000 recipients, so the
// per-recipient counts are a real map rather than one hot key.
func BenchmarkEnqueueWithQuota(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{Quota: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			body := []byte("hello, this is a typical short message ü")
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						m := &Message{From: "1000@127.0.0.1", To: fmt.Sprintf("%d@127.0.0.1", i%1000), CoreUUID: "bdcc48b6-f5fb-4c75-ab1b-a0d810059303",
							EventSeq: uint64(i), Body: body, BodySource: BodyQuery, ContentType: "text/plain"}
						if _, err := s.Enqueue(context.Background(), m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
