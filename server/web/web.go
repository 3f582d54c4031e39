// Package web is the demo page `wschan serve` shows at /: the "Work with
// WebSockets" recipe's app (a "Send a message" field, a send button, the
// latest message from the server) plus a connection state, a time-stamped
// log of text and binary messages, a URL field with connect/disconnect,
// automatic reconnect with capped backoff and jitter, and the command lines
// that reach the same URL. It speaks English and Simplified Chinese.
//
// The page is plain HTML, CSS and one ES module (index.html, style.css,
// app.js), embedded in the binary: no build step, no CDN, it works offline.
// [ServePage] writes the page with a strict Content-Security-Policy (no
// inline script or style; scripts, styles and connections only from this
// origin, plus WebSocket URLs the user types); [Static] serves app.js,
// style.css and the icon under /static/.
//
// The browser tests (e2e.test.mjs, run by web_test.go) drive Debian's
// Chromium with the npm package playwright-core against a real server.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"
)

//go:embed index.html app.js style.css icon.svg
var files embed.FS

// StaticPrefix is the path under which [Static] serves the page's assets.
const StaticPrefix = "/static/"

// ContentSecurityPolicy is the policy the page is served with: everything
// from this origin only, no inline script or style, no plugins, no <base>,
// no framing; connections to this origin and to any ws: or wss: URL (the
// page's URL field may point anywhere).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Endpoint is a server route the page lists for client developers.
type Endpoint struct {
	Path    string // e.g. "/ws/drop"
	Summary string // one line, in English
}

// Page is what the server tells the page.
type Page struct {
	// Endpoints are the test routes to list below the app; none when the
	// server has them turned off.
	Endpoints []Endpoint
}

// asset is one embedded file with what its response needs.
type asset struct {
	data  []byte
	ctype string
	tag   string // content hash: the version in asset URLs and the ETag
}

// assetTypes names the files Static serves, with their Content-Type.
var assetTypes = map[string]string{
	"app.js":    "text/javascript; charset=utf-8",
	"style.css": "text/css; charset=utf-8",
	"icon.svg":  "image/svg+xml",
}

// load reads the embedded files once: the assets by name and the page
// template with each asset's versioned URL.
var load = sync.OnceValues(func() (map[string]asset, *template.Template) {
	assets := map[string]asset{}
	for name, ctype := range assetTypes {
		b, err := files.ReadFile(name)
		if err != nil {
			panic(err) // embedded above: cannot happen
		}
		sum := sha256.Sum256(b)
		assets[name] = asset{data: b, ctype: ctype, tag: hex.EncodeToString(sum[:8])}
	}
	tmpl := template.Must(template.New("index.html").Funcs(template.FuncMap{
		// static returns the versioned URL of an asset: it may be cached
		// for a year, since a new build changes the URL.
		"static": func(name string) string {
			return StaticPrefix + name + "?v=" + assets[name].tag
		},
	}).ParseFS(files, "index.html"))
	return assets, tmpl
})

// ServePage writes the page, with its security headers. It answers 405 to
// anything but GET and HEAD.
func ServePage(w http.ResponseWriter, r *http.Request, p Page) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	_, tmpl := load()
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, p); err != nil {
		http.Error(w, "page template: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(buf.Bytes()))
}

// Static returns a handler for the page's assets, to be mounted at
// StaticPrefix ("GET /static/"). A request carrying the asset's current
// version (?v=, as the page links it) may be cached for a year; any other
// must revalidate (ETag). Unknown names are 404: there is no listing.
func Static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		assets, _ := load()
		name, _ := strings.CutPrefix(r.URL.Path, StaticPrefix)
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", `"`+a.tag+`"`)
		if r.URL.Query().Get("v") == a.tag {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
	})
}
