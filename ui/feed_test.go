package ui

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFeedDropsSlowSubscriber: a subscriber that does not read is let go
// rather than holding up the others.
func TestFeedDropsSlowSubscriber(t *testing.T) {
	f := NewFeed(localStore(t), FeedOptions{Buffer: 2, Resync: time.Hour})
	defer f.Close()
	slow, stopSlow := f.Subscribe()
	defer stopSlow()
	fast, stopFast := f.Subscribe()
	defer stopFast()
	for i := range 5 {
		f.publish(beatOf("svc", now.Add(time.Duration(i)*time.Second)))
		if m := <-fast; !m.Timestamp.Equal(now.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("fast subscriber got %v", m.Timestamp)
		}
	}
	n := 0
	for range slow {
		n++
	}
	if n != 2 {
		t.Errorf("the slow subscriber got %d beats before being dropped, want its buffer of 2", n)
	}
}

// TestFeedResync: the listing catches up with what the watch did not
// say: a service whose key is gone leaves, one written meanwhile comes.
func TestFeedResync(t *testing.T) {
	store := localStore(t)
	put(t, store, beatOf("gone", now))
	f := NewFeed(store, FeedOptions{Resync: 20 * time.Millisecond})
	defer f.Close()
	beats, err := f.Heartbeats(context.Background())
	if err != nil || len(beats) != 1 {
		t.Fatalf("%v %v", beats, err)
	}
	if err := os.Remove(filepath.Join(store.Dir(), "gone.json")); err != nil {
		t.Fatal(err)
	}
	put(t, store, beatOf("new", now))
	for i := 0; ; i++ {
		beats, _ = f.Heartbeats(context.Background())
		if len(beats) == 1 && beats[0].ServiceName == "new" {
			break
		}
		if i > 500 {
			t.Fatalf("after a resync: %v", beats)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFeedKeepsNewerWatchedBeat: a listing older than what the watch
// brought does not take a service back in time.
func TestFeedKeepsNewerWatchedBeat(t *testing.T) {
	store := localStore(t)
	put(t, store, beatOf("svc", now.Add(-time.Minute)))
	f := NewFeed(store, FeedOptions{Resync: time.Hour})
	defer f.Close()
	if _, err := f.Heartbeats(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.publish(beatOf("svc", now))
	f.publish(beatOf("svc", now.Add(-2*time.Minute))) // late and old
	f.list()
	beats, _ := f.Heartbeats(context.Background())
	if len(beats) != 1 || !beats[0].Timestamp.Equal(now) {
		t.Errorf("%v, want the watched beat of %v", beats, now)
	}
}
