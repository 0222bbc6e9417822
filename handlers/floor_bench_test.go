package handlers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
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
			elapsed := closedLoop(b, "http://"+ln.Addr().String(), keepAlive, clients)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}
