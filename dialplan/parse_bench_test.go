package dialplan

import "testing"

func BenchmarkParse(b *testing.B) {
	form := []byte(capturedForm)
	b.ReportAllocs()
	for b.Loop() {
		l, err := Parse(capturedQuery, form)
		if err != nil || l.CheckMessage() != nil {
			b.Fatal(err)
		}
	}
}
