package mirror

import (
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
