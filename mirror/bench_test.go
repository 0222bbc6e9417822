package mirror

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkMirrorThroughput drains b.N outbox records (five per message,
// interleaved) into the local MariaDB with the default batch settings and
// reports rows/s: message upserts plus events.
func BenchmarkMirrorThroughput(b *testing.B) {
	m, _ := testMirror(b, Config{Interval: 100 * time.Millisecond, BackoffMin: 200 * time.Millisecond})
	recs := genRecords((b.N+4)/5, 5, 0)[:b.N]
	src := newOutbox(recs)
	b.ResetTimer()
	start := time.Now()
	drain(b, m, src)
	elapsed := time.Since(start)
	b.StopTimer()
	st := m.Stats()
	b.ReportMetric(float64(st.Rows)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(st.Records)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(st.Batches), "batches")
}

// lagOutbox is a fakeOutbox that measures, for every record deleted (that is,
// committed to MySQL), the time since the record was made.
type lagOutbox struct {
	*fakeOutbox
	mu   sync.Mutex
	lags []time.Duration
}

func (o *lagOutbox) OutboxDelete(ctx context.Context, upTo uint64) error {
	now := time.Now()
	o.fakeOutbox.mu.Lock()
	var ls []time.Duration
	for _, r := range o.recs {
		if r.Seq > upTo {
			break
		}
		ls = append(ls, now.Sub(r.At))
	}
	o.fakeOutbox.mu.Unlock()
	o.mu.Lock()
	o.lags = append(o.lags, ls...)
	o.mu.Unlock()
	return o.fakeOutbox.OutboxDelete(ctx, upTo)
}

// BenchmarkMirrorLag feeds 2,000 messages/s (received, body, delivered: 6,000
// records/s) for 20 s and reports the lag from a record's creation to its
// commit in MariaDB. The goal: p99 ≤ 1 s (docs/architecture.md, "Performance targets").
func BenchmarkMirrorLag(b *testing.B) {
	const (
		perSecond = 2000
		perMsg    = 3
		runFor    = 20 * time.Second
	)
	for range b.N {
		m, _ := testMirror(b, Config{})
		src := &lagOutbox{fakeOutbox: newOutbox(nil)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, src) }()
		tick := time.NewTicker(10 * time.Millisecond) // 20 messages a tick
		var seq uint64
		msg := 0
		start := time.Now()
		for time.Since(start) < runFor {
			<-tick.C
			now := time.Now()
			var recs []Record
			for range perSecond / 100 {
				for n := range perMsg {
					seq++
					r := makeRecord(msg, n, seq)
					r.At = now
					recs = append(recs, r)
				}
				msg++
			}
			src.add(recs...)
		}
		tick.Stop()
		for src.len() > 0 && time.Since(start) < runFor+time.Minute {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		src.mu.Lock()
		lags := slices.Clone(src.lags)
		src.mu.Unlock()
		slices.Sort(lags)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(lags[len(lags)/2]), "p50-ms")
		b.ReportMetric(ms(lags[len(lags)*99/100]), "p99-ms")
		b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
		b.ReportMetric(float64(len(lags)), "records")
	}
}

// BenchmarkMirrorBacklog drains a backlog of 1,000,000 records (200,000
// messages, five records each) and reports how long it took.
func BenchmarkMirrorBacklog(b *testing.B) {
	for range b.N {
		m, _ := testMirror(b, Config{})
		src := newOutbox(genRecords(200000, 5, 0))
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, src) }()
		for src.len() > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(start)
		cancel()
		<-done
		b.ReportMetric(took.Seconds(), "s/drain")
		b.ReportMetric(1e6/took.Seconds(), "records/s")
	}
}
