package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The live stream (GET /ui/events) is a text/event-stream:
//
//	retry: 3000
//	event: snapshot   data: {"now": MS, "beats": [beat…], "error": "…"}
//	event: beat       data: {"now": MS, "beat": beat}
//	: ping            (a comment, every PingEvery)
//
// now is the server's clock in Unix milliseconds, so that the script can
// judge ages against the server rather than the viewer's clock. Every
// string was made safe by text() and is JSON-escaped for HTML (<, >, &),
// and the script only ever sets textContent.

type snapshotEvent struct {
	Now   int64  `json:"now"`
	Beats []beat `json:"beats"`
	Error string `json:"error,omitempty"`
}

type beatEvent struct {
	Now  int64 `json:"now"`
	Beat beat  `json:"beat"`
}

// serveEvents streams heartbeats to one viewer.
func (u *UI) serveEvents(w http.ResponseWriter, r *http.Request) {
	if u.o.Feed == nil {
		refuse(w, http.StatusNotFound, "this server has no heartbeat store to follow")
		return
	}
	select {
	case <-u.closing:
		refuse(w, http.StatusServiceUnavailable, "the status page is being replaced; reconnect")
		return
	default:
	}
	select {
	case u.streams <- struct{}{}:
	default:
		u.o.Log.Warn("status page: a live stream was refused: too many at once", "max", cap(u.streams), "client", r.RemoteAddr)
		refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("too many live viewers (at most %d at once): the page still shows everything without live updates; reload it for news, or try again later", cap(u.streams)))
		return
	}
	defer func() { <-u.streams }()

	beats, stop := u.o.Feed.Subscribe()
	defer stop()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a reverse proxy must not hold events back
	w.WriteHeader(http.StatusOK)
	send := func(s string) error {
		// Each write has its own deadline, which also lifts the server's
		// write timeout for the whole response: a stream lives long, a
		// viewer that stops reading does not hold it.
		if err := rc.SetWriteDeadline(time.Now().Add(u.o.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := io.WriteString(w, s); err != nil {
			return err
		}
		return rc.Flush()
	}
	if send("retry: 3000\n\n") != nil {
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	msgs, err := u.o.Feed.Heartbeats(ctx)
	cancel()
	now := u.o.Now()
	snap := snapshotEvent{Now: now.UnixMilli(), Beats: make([]beat, 0, len(msgs))}
	if err != nil {
		snap.Error = "the heartbeat store cannot be read; serve's log says why"
	}
	for _, m := range msgs {
		snap.Beats = append(snap.Beats, u.beatOf(m, now))
	}
	// Beyond MaxRows services, the stream follows those the page shows
	// (problems first), as the page does; news of the others is dropped.
	var shown map[string]bool
	if len(snap.Beats) > u.o.MaxRows {
		snap.Beats = firstBeats(snap.Beats, u.o.MaxRows)
		shown = make(map[string]bool, len(snap.Beats))
		for _, b := range snap.Beats {
			shown[b.Service] = true
		}
	}
	if send(event("snapshot", snap)) != nil {
		return
	}

	ping := time.NewTicker(u.o.PingEvery)
	defer ping.Stop()
	end := time.NewTimer(u.o.MaxStreamAge)
	defer end.Stop()
	for {
		var msg string
		select {
		case <-r.Context().Done():
			return
		case <-u.closing:
			return
		case <-end.C:
			return
		case <-ping.C:
			msg = ": ping\n\n"
		case m, ok := <-beats:
			if !ok {
				return // too slow, or the feed closed: the page reconnects
			}
			now := u.o.Now()
			b := u.beatOf(m, now)
			if shown != nil && !shown[b.Service] {
				continue
			}
			msg = event("beat", beatEvent{Now: now.UnixMilli(), Beat: b})
		}
		if send(msg) != nil {
			return
		}
	}
}

// event is one server-sent event; v's JSON holds no newline.
func event(name string, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{}`)
	}
	return "event: " + name + "\ndata: " + string(b) + "\n\n"
}
