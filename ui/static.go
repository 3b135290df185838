package ui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"time"
)

// serveStatic serves the embedded stylesheet and script. They carry an
// ETag, so that a browser asks again cheaply and an upgraded binary's
// files are taken at once.
func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	name := r.PathValue("file")
	b, err := fs.ReadFile(assets, "static/"+name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	tag, ok := u.etags.Load(name)
	if !ok {
		sum := sha256.Sum256(b)
		tag = `"` + hex.EncodeToString(sum[:8]) + `"`
		u.etags.Store(name, tag)
	}
	w.Header().Set("ETag", tag.(string))
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}
