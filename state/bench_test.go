package state_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"checker/state"
)

// BenchmarkRewrite10000 reads and rewrites 10,000 job records in one
// synced transaction: what recording a 10,000-job run costs the state.
func BenchmarkRewrite10000(b *testing.B) {
	s := &state.Store{Path: filepath.Join(b.TempDir(), "checker.state")}
	names := make([]string, 10000)
	for i := range names {
		names[i] = fmt.Sprintf("tcp:j%05d", i)
	}
	sort.Strings(names)
	now := time.Now()
	fill := func(tx *state.Tx) error {
		for _, n := range names {
			j, _, err := tx.Job(n)
			if err != nil {
				return err
			}
			j.LastRun, j.LastStatus, j.LastMessage = now, "OK", "connected to 127.0.0.1:5432 in 1.2ms"
			j.LastSlot = now.Format("2006-01-02T15:04Z0700")
			if err := tx.PutJob(n, &j); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.Update(b.Context(), fill); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Update(b.Context(), fill); err != nil {
			b.Fatal(err)
		}
	}
}
