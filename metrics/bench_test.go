package metrics

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkText10000Jobs is a scrape of a checker with 10,000 jobs and
// 1,000 heartbeat services: building the families and writing the text.
func BenchmarkText10000Jobs(b *testing.B) {
	s := Snapshot{Server: "bench", Version: "dev", HeartbeatsRead: true}
	for i := range 10000 {
		s.Jobs = append(s.Jobs, Job{Name: fmt.Sprintf("tcp:host%05d", i), Type: "tcp", Ran: true, Up: i%10 != 0,
			LastRun: now, LastSuccess: now, Duration: time.Millisecond})
	}
	for i := range 1000 {
		s.Heartbeats = append(s.Heartbeats, Heartbeat{Service: fmt.Sprintf("svc%04d", i), Timestamp: now, State: "alive"})
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		text, err := Text(s, now)
		if err != nil {
			b.Fatal(err)
		}
		n = len(text)
	}
	b.ReportMetric(float64(n), "bytes/scrape")
}
