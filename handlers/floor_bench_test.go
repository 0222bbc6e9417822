package handlers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/dialplan"
)

// BenchmarkHTTPFloor calibrates the machine: a bare net/http handler that reads the
// form and answers a constant chatplan, with no echo, no parsing and no store, under
// the same load client as BenchmarkIntake. What it reaches is the ceiling any
// intake over HTTP can reach here.
func BenchmarkHTTPFloor(b *testing.B) {
	doc, err := dialplan.Chatplan("public", "01JFIXTURE0000000000000001")
	if err != nil {
		b.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		w.Header().Set("Content-Length", fmt.Sprint(len(doc)))
		w.Write(doc)
	})
	for _, keepAlive := range []bool{true, false} {
		for _, clients := range []int{2, 64} {
			benchFloor(b, h, keepAlive, clients)
		}
	}
}

func benchFloor(b *testing.B, h http.Handler, keepAlive bool, clients int) {
	{
		b.Run(fmt.Sprintf("keepalive=%v/clients=%d", keepAlive, clients), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
			done := make(chan struct{})
			go func() { defer close(done); Serve(srv, ln) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
				<-done
			}()
			url := "http://" + ln.Addr().String()
			var next atomic.Int64
			var failed atomic.Value
			lat := make([][]time.Duration, clients)
			b.ResetTimer()
			start := time.Now()
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
			elapsed := time.Since(start)
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			reportLatency(b, slices.Concat(lat...))
		})
	}
}
