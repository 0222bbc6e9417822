package relay

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/kv"
)

// stamps are the times of one message's steps in a traced drain.
type stamps struct{ begin0, begin1, send0, send1, ans, del0, del1 time.Time }

type tracer struct {
	mu sync.Mutex
	m  map[string]*stamps
}

func (t *tracer) at(id string, f func(s *stamps)) {
	t.mu.Lock()
	s := t.m[id]
	if s == nil {
		s = &stamps{}
		t.m[id] = s
	}
	f(s)
	t.mu.Unlock()
}

type traceStore struct {
	*kv.Store
	t *tracer
}

func (s traceStore) BeginAttempt(ctx context.Context, id, attempt string, at time.Time) (*kv.Message, error) {
	t0 := time.Now()
	m, err := s.Store.BeginAttempt(ctx, id, attempt, at)
	t1 := time.Now()
	s.t.at(id, func(st *stamps) { st.begin0, st.begin1 = t0, t1 })
	return m, err
}

func (s traceStore) Delivered(ctx context.Context, id, attempt, result string) error {
	t0 := time.Now()
	err := s.Store.Delivered(ctx, id, attempt, result)
	t1 := time.Now()
	s.t.at(id, func(st *stamps) { st.del0, st.del1 = t0, t1 })
	return err
}

type traceDirect struct {
	*SIPDirect
	t *tracer
}

func (d traceDirect) Send(ctx context.Context, m *kv.Message) (func(context.Context) (int, error), bool, error) {
	t0 := time.Now()
	wait, ok, err := d.SIPDirect.Send(ctx, m)
	t1 := time.Now()
	d.t.at(m.ID, func(st *stamps) { st.send0, st.send1 = t0, t1 })
	if !ok || err != nil {
		return wait, ok, err
	}
	return func(ctx context.Context) (int, error) {
		c, err := wait(ctx)
		t2 := time.Now()
		d.t.at(m.ID, func(st *stamps) { st.ans = t2 })
		return c, err
	}, ok, err
}

// BenchmarkDirectDrainSteps drains 1,000 messages directly at direct windows
// 4 and 16 (journal on) and reports where a message's time goes, as medians
// over the messages: the attempt-begun record (append + fdatasync), the wait for
// the previous send to leave and for room on the wire, sipgo's send, the
// phone's 200, the Delivered record. The breakdown behind docs/decisions.md §20.
func BenchmarkDirectDrainSteps(b *testing.B) {
	for _, window := range []int{4, 16} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			for range b.N {
				traceDrain(b, window, 1000)
			}
		})
	}
}

func traceDrain(t *testing.B, window, n int) {
	t.StopTimer()
	ctx := context.Background()
	s, err := kv.Open(filepath.Join(t.TempDir(), "sipsilo.db"), kv.Options{Journal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	const aor = "1001@127.0.0.1"
	ids := queueForDrain(t, s, aor, n)
	phone, err := fsemu.NewUA(fsemu.UAOptions{User: "1001", Switch: "127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	tr := &tracer{m: map[string]*stamps{}}
	d := traceDirect{&SIPDirect{Client: directClient(t), Contacts: oneContact{uri: "sip:1001@" + phone.Addr(), dest: phone.Addr()}}, tr}
	r := New(Config{Window: 16, DirectWindow: window, Direct: d}, traceStore{s, tr}, &fakeFS{registered: true}, &fakePresence{ok: true})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	syncs0 := s.JournalSyncs()
	t.StartTimer()
	start := time.Now()
	go func() { _ = r.Run(rctx); close(done) }()
	defer func() {
		cancel()
		<-done
	}()
	got := 0
	for got < n {
		select {
		case <-phone.Received():
			got++
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d", got, n)
		}
	}
	for {
		q, _ := s.Queue(aor, 1)
		if len(q) == 0 {
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	took := time.Since(start)
	t.StopTimer()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var begin, chain, send, answer, gapDel, del []float64
	for _, id := range ids {
		st := tr.m[id]
		begin = append(begin, ms(st.begin1.Sub(st.begin0)))
		chain = append(chain, ms(st.send0.Sub(st.begin1)))
		send = append(send, ms(st.send1.Sub(st.send0)))
		answer = append(answer, ms(st.ans.Sub(st.send1)))
		gapDel = append(gapDel, ms(st.del0.Sub(st.ans)))
		del = append(del, ms(st.del1.Sub(st.del0)))
	}
	med := func(v []float64) float64 {
		slices.Sort(v)
		return v[len(v)/2]
	}
	// As each message left: how many sends were out awaiting their answer, and
	// how many later messages had their attempt begun, durable, ready to go.
	var out, ready float64
	for _, id := range ids {
		at := tr.m[id].send0
		for _, o := range tr.m {
			if o.send0.Before(at) && o.ans.After(at) {
				out++
			}
			if o.begin1.Before(at) && o.send0.After(at) {
				ready++
			}
		}
	}
	t.ReportMetric(out/float64(n), "out-at-send")
	t.ReportMetric(ready/float64(n), "ready-at-send")
	t.ReportMetric(ms(took), "ms/drain")
	t.ReportMetric(float64(s.JournalSyncs()-syncs0), "journal-syncs")
	t.ReportMetric(med(begin), "begin-ms")
	t.ReportMetric(med(chain), "wait-ms")
	t.ReportMetric(med(send), "send-ms")
	t.ReportMetric(med(answer), "answer-ms")
	t.ReportMetric(med(gapDel), "to-record-ms")
	t.ReportMetric(med(del), "record-ms")
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
