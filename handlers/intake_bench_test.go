package handlers

// Intake benchmarks: HTTP request → decision → durable bbolt commit (fsync) → answer,
// through the real handler and a real file, with the load generator in the same
// process (both share this machine's cores). Results and commands: BENCHMARKS.md.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipsilo/sipsilo/kv"
)

type benchServer struct {
	url   string
	store *kv.Store
}

func startBenchServer(b *testing.B, journal ...bool) *benchServer {
	b.Helper()
	s, err := kv.Open(filepath.Join(b.TempDir(), "sipsilo.db"), kv.Options{Journal: len(journal) > 0 && journal[0]})
	if err != nil {
		b.Fatal(err)
	}
	// Registered first, so it runs after the server's shutdown.
	b.Cleanup(func() { s.Close(context.Background()) })
	return &benchServer{url: startBenchHandlers(b, s), store: s}
}

// startBenchHandlers serves the real handlers over store, with the access log
// and the intake histogram on as in production; it returns the base URL.
func startBenchHandlers(b *testing.B, s Store) string {
	b.Helper()
	// The access log is on, as in production, formatted but written nowhere.
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Getenv("BENCHLOG") != "" {
		// Says why a benchmark failed on an answer (it stores nothing).
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// So is the /metrics hook: every answer is observed into a histogram. These
	// tests cannot import package metrics (it imports handlers), so this is the
	// same client_golang histogram looked up by its labels on each call, which
	// costs a little more than metrics.Intake's prepared lookup.
	intake := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sipsilo_intake_seconds", Help: "Intake.",
		Buckets: []float64{.0001, .00025, .0005, .00075, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}},
		[]string{"answer", "why"})
	prometheus.NewRegistry().MustRegister(intake)
	cfg := Config{Chatplan: ChatplanConfig{Observe: func(answer, why string, took time.Duration) {
		intake.WithLabelValues(answer, why).Observe(took.Seconds())
	}}}
	e, err := New(cfg, s, log)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer("", e, log)
	done := make(chan struct{})
	go func() { defer close(done); Serve(srv, ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return "http://" + ln.Addr().String()
}

// BenchmarkIntakeHandler is BenchmarkIntake with a store that answers at
// once: the handler's own cost (echo, the access log, parsing, the decision,
// the answer) above BenchmarkHTTPFloor, without the commit, at FreeSWITCH's
// pattern and at 64 kept-alive clients. Run them in one `go test -bench`
// (BENCHMARKS.md).
func BenchmarkIntakeHandler(b *testing.B) {
	for _, shape := range []struct {
		keepAlive bool
		clients   int
	}{{false, 2}, {true, 64}} {
		b.Run(fmt.Sprintf("keepalive=%v/clients=%d", shape.keepAlive, shape.clients), func(b *testing.B) {
			store := &fakeStore{enqueue: func(context.Context, *kv.Message) (string, error) {
				return "01JFIXTURE0000000000000001", nil
			}}
			url := startBenchHandlers(b, store)
			elapsed := closedLoop(b, url, shape.keepAlive, shape.clients)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}

// closedLoop runs b.N requests from clients load clients (each sends as soon
// as its answer came back), reports their latencies and returns the time
// they took, with b's timer stopped.
func closedLoop(b *testing.B, url string, keepAlive bool, clients int) time.Duration {
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var failed atomic.Value
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			client, err := newLoadClient(keepAlive, url)
			if err != nil {
				failed.Store(err)
				return
			}
			defer client.close()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := client.do(); err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	reportLatency(b, slices.Concat(lat...))
	// The process's CPU per request, server, store and clients together: on
	// a machine shared with other work the rates move with what the others
	// take, this much less (BENCHMARKS.md, "Intake CPU — 2026-12-07").
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/req")
	return elapsed
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkIntake: closed loop, N clients each sending as fast as answers come back.
// keepalive=false opens a new connection per request, as FreeSWITCH's xml_curl does;
// clients=2 is one FreeSWITCH, which asks the chatplan from its two chat threads.
func BenchmarkIntake(b *testing.B) { benchIntake(b, false) }

// BenchmarkIntakeJournal is BenchmarkIntake with the write-ahead journal
// (docs/decisions.md §34): msgs/commit then counts bbolt's apply transactions.
func BenchmarkIntakeJournal(b *testing.B) { benchIntake(b, true) }

func benchIntake(b *testing.B, journal bool) {
	for _, keepAlive := range []bool{true, false} {
		for _, clients := range []int{1, 2, 16, 64, 256} {
			b.Run(fmt.Sprintf("keepalive=%v/clients=%d", keepAlive, clients), func(b *testing.B) {
				srv := startBenchServer(b, journal)
				commits0, syncs0 := srv.store.Commits(), srv.store.JournalSyncs()
				elapsed := closedLoop(b, srv.url, keepAlive, clients)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(b.N)/float64(max(1, srv.store.Commits()-commits0)), "msgs/commit")
				if journal {
					b.ReportMetric(float64(b.N)/float64(max(1, srv.store.JournalSyncs()-syncs0)), "msgs/jsync")
				}
			})
		}
	}
}

// BenchmarkIntakeAtRate: open loop at a fixed request rate, latency measured from each
// request's scheduled send time so that a stall is not hidden by sending less
// (coordinated omission). Use a fixed count, e.g. -benchtime=20000x.
func BenchmarkIntakeAtRate(b *testing.B) {
	for _, keepAlive := range []bool{true, false} {
		for _, rate := range []int{1000, 2000} {
			b.Run(fmt.Sprintf("keepalive=%v/rate=%d", keepAlive, rate), func(b *testing.B) {
				srv := startBenchServer(b)
				// 64 senders, like the chat threads of many FreeSWITCH nodes; each request
				// is due at its slot in the schedule whether or not a sender is free.
				const senders = 64
				lat := make([]time.Duration, b.N)
				type job struct {
					i   int
					due time.Time
				}
				jobs := make(chan job, b.N)
				var failed atomic.Value
				var wg sync.WaitGroup
				for range senders {
					wg.Go(func() {
						client, err := newLoadClient(keepAlive, srv.url)
						if err != nil {
							failed.Store(err)
							return
						}
						defer client.close()
						for j := range jobs {
							if err := client.do(); err != nil {
								failed.Store(err)
							}
							lat[j.i] = time.Since(j.due)
						}
					})
				}
				interval := time.Second / time.Duration(rate)
				b.ResetTimer()
				start := time.Now()
				for i := range b.N {
					due := start.Add(time.Duration(i) * interval)
					time.Sleep(time.Until(due))
					jobs <- job{i, due}
				}
				close(jobs)
				wg.Wait()
				b.StopTimer()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
				reportLatency(b, lat)
			})
		}
	}
}
