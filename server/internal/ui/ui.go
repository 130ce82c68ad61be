// Package ui serves the web UI at /ui/: static files embedded in the binary
// (no CDN, no external font: clusters are often air-gapped). The UI is a
// client of the public API with the credentials the person types, so this
// package has no routes of its own beyond the files and needs no auth.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is the URL path the UI is served under.
const Prefix = "/ui/"

// ContentSecurityPolicy allows only this server's own files and API: no inline
// script or style, no other host, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are the only kinds of file the UI ships; other files are not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".txt":  "text/plain; charset=utf-8",
}

type file struct {
	body, gzipped []byte
	contentType   string
	etag          string
}

// Handler serves the embedded files. Build it once with New.
type Handler struct {
	files map[string]*file
}

// New indexes the embedded files, with their ETags and gzip forms.
func New() *Handler {
	h, err := newHandler(assets)
	if err != nil {
		// The files are compiled in: this can only be a build defect.
		panic("ui: " + err.Error())
	}
	return h
}

func newHandler(fsys fs.FS) (*Handler, error) {
	root, err := fs.Sub(fsys, "assets")
	if err != nil {
		return nil, err
	}
	h := &Handler{files: map[string]*file{}}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := &file{body: body, contentType: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if ctype != "image/png" {
			f.gzipped = compress(body)
		}
		h.files[name] = f
		return nil
	})
	return h, err
}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	if buf.Len() >= len(b) {
		return nil
	}
	return buf.Bytes()
}

// ServeHTTP answers GET and HEAD for paths under Prefix; "/ui/" is index.html.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")

	name := strings.TrimPrefix(r.URL.Path, Prefix)
	if name == "" {
		name = "index.html"
	}
	f, ok := h.files[name]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	// The file names carry no version, so the browser revalidates each time
	// (a cheap 304 by ETag) and never runs a stale UI against a newer API.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Type", f.contentType)
	body, etag := f.body, f.etag
	if f.gzipped != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = f.gzipped, strings.TrimSuffix(f.etag, `"`)+`-gz"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, found := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if v, err := strconv.ParseFloat(q, 64); found && err == nil && v == 0 {
			return false
		}
		return true
	}
	return false
}

// WantsHTML tells a browser (which asks for text/html) from an API client, so
// that "/" can send browsers to the UI and keep answering API clients in JSON.
func WantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// Size is the total of the served files, raw and as sent gzipped.
func (h *Handler) Size() (raw, gzipped int) {
	for _, f := range h.files {
		raw += len(f.body)
		if f.gzipped != nil {
			gzipped += len(f.gzipped)
		} else {
			gzipped += len(f.body)
		}
	}
	return raw, gzipped
}
