package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// scrapeTimeout bounds what one scrape may wait for (the heartbeat store
// behind a part, say).
const scrapeTimeout = 5 * time.Second

// Handler serves GET /metrics: the text of each part in turn, each
// computed per request (a part may answer from a cache of its own). The
// parts must hold distinct metric families. Access is the caller's
// business.
func Handler(parts ...func(ctx context.Context) []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout)
		defer cancel()
		texts := make([][]byte, len(parts))
		n := 0
		for i, p := range parts {
			texts[i] = p(ctx)
			n += len(texts[i])
		}
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", strconv.Itoa(n))
		for _, t := range texts {
			if _, err := w.Write(t); err != nil {
				return
			}
		}
	})
}
