package handlers

// Intake benchmarks: HTTP request → decision → durable bbolt commit (fsync) → answer,
// through the real handler and a real file, with the load generator in the same
// process (both share this machine's cores). Results and commands: BENCHMARKS.md.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

type benchServer struct {
	url   string
	store *kv.Store
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	s, err := kv.Open(filepath.Join(b.TempDir(), "sipsilo.db"), kv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	// The access log is on, as in production, formatted but written nowhere.
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e, err := New(Config{}, s, log)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer("", e, log)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		s.Close(ctx)
	})
	return &benchServer{url: "http://" + ln.Addr().String() + ChatplanPath + "?" + bodyQuery("hello, this is a typical short message ü"), store: s}
}

func benchClient(keepAlive bool, conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
	}}
}

// intake posts one message and checks that it was taken over.
func intake(client *http.Client, url string, f []byte) error {
	res, err := client.Post(url, "application/x-www-form-urlencoded", bytes.NewReader(f))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`application="final"`)) {
		return fmt.Errorf("status %d: %.200s", res.StatusCode, body)
	}
	return nil
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
// keepalive=false opens a new connection per request, as FreeSWITCH's xml_curl does.
func BenchmarkIntake(b *testing.B) {
	for _, keepAlive := range []bool{true, false} {
		for _, clients := range []int{1, 16, 64, 256} {
			b.Run(fmt.Sprintf("keepalive=%v/clients=%d", keepAlive, clients), func(b *testing.B) {
				srv := startBenchServer(b)
				client := benchClient(keepAlive, clients)
				defer client.CloseIdleConnections()
				f := form(nil)
				var next atomic.Int64
				lat := make([][]time.Duration, clients)
				commits0 := srv.store.Commits()
				var failed atomic.Value
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for w := range clients {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							t0 := time.Now()
							if err := intake(client, srv.url, f); err != nil {
								failed.Store(err)
								return
							}
							lat[w] = append(lat[w], time.Since(t0))
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(b.N)/float64(max(1, srv.store.Commits()-commits0)), "msgs/commit")
				reportLatency(b, slices.Concat(lat...))
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
				const conns = 64
				client := benchClient(keepAlive, conns)
				defer client.CloseIdleConnections()
				f := form(nil)
				lat := make([]time.Duration, b.N)
				sem := make(chan struct{}, conns)
				var failed atomic.Value
				var wg sync.WaitGroup
				interval := time.Second / time.Duration(rate)
				b.ResetTimer()
				start := time.Now()
				for i := range b.N {
					due := start.Add(time.Duration(i) * interval)
					time.Sleep(time.Until(due))
					sem <- struct{}{}
					wg.Go(func() {
						defer func() { <-sem }()
						if err := intake(client, srv.url, f); err != nil {
							failed.Store(err)
						}
						lat[i] = time.Since(due)
					})
				}
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
