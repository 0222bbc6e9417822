package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipsilo/sipsilo/handlers"
)

// BenchmarkIntakeHook is what /metrics adds to each chatplan answer.
func BenchmarkIntakeHook(b *testing.B) {
	m, err := New(prometheus.NewRegistry(), Sources{})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Intake(handlers.AnswerFinal, handlers.WhyStored, 400*time.Microsecond)
		}
	})
}
