package state_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"checker/state"
)

// benchJobs is the size of the state the benchmarks load and save: the
// "10,000 jobs" of the performance targets (load + save under 50 ms).
const benchJobs = 10000

// benchState is a state as a steady cron minute leaves it: every job ran in
// the last slot, a few are failing, one notice waits in the outbox.
func benchState(n int) *state.File {
	f := state.New()
	now := time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		j := f.Job(fmt.Sprintf("http:site%05d[https://host%05d.example.test/health]", i, i))
		j.Since = now.Add(-time.Duration(i) * time.Minute)
		j.LastSlot = now.Format("2006-01-02T15:04")
		j.LastRun = now.Add(time.Duration(i) * time.Millisecond)
		j.LastStatus = "OK"
		j.LastMessage = fmt.Sprintf("GET https://host%05d.example.test/health: 200 OK in 1.23ms", i)
		if i%100 == 0 {
			j.Failing, j.Failures = true, 3
			j.FirstFailure, j.LastNotified = j.Since, now
			j.LastStatus = "CRITICAL"
			j.LastMessage = "GET https://host.example.test/health: status 503 Service Unavailable, want 200"
		}
	}
	f.Outbox = []state.Notice{{Job: "http:site00000", Kind: state.KindFailure, Subject: "failing", Body: "body", To: []string{"ops@example.test"}, Created: now}}
	return f
}

// benchStore saves a big state through Store.Update and returns the store.
func benchStore(b *testing.B, n int) *state.Store {
	b.Helper()
	s := &state.Store{Path: filepath.Join(b.TempDir(), "checker.state")}
	big := benchState(n)
	err := s.Update(context.Background(), func(f *state.File) error {
		*f = *big
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkUpdate10000 is what every cron invocation pays twice: lock,
// read, decode, encode, write, fsync, rename, for 10,000 jobs.
func BenchmarkUpdate10000(b *testing.B) {
	s := benchStore(b, benchJobs)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		err := s.Update(ctx, func(f *state.File) error {
			if len(f.Jobs) != benchJobs {
				return fmt.Errorf("%d jobs", len(f.Jobs))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead10000 is the load half: read and decode.
func BenchmarkRead10000(b *testing.B) {
	s := benchStore(b, benchJobs)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode10000 is decoding alone, without the file.
func BenchmarkDecode10000(b *testing.B) {
	data, err := json.Marshal(benchState(benchJobs))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := state.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode10000 is the encoding save does (compact JSON), without
// the file.
func BenchmarkEncode10000(b *testing.B) {
	f := benchState(benchJobs)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(f); err != nil {
			b.Fatal(err)
		}
	}
}
