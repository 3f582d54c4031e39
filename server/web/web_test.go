package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/wschan/wschan/internal/xconnect"
	"github.com/wschan/wschan/server"
	"github.com/wschan/wschan/server/web"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Extended CONNECT, so that the page's socket can ride HTTP/2 in
	// TestBrowser: a process-wide switch in Go 1.26, read at start-up (see
	// internal/xconnect).
	if err := xconnect.Reexec(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	goleak.VerifyTestMain(m)
}

// do runs one request against h and returns the response with its body.
func do(t *testing.T, h http.Handler, method, target string, header http.Header) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	resp := w.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// pageHandler serves the page as the server does, with one test endpoint.
var pageHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	web.ServePage(w, r, web.Page{Endpoints: []web.Endpoint{{Path: "/ws/drop", Summary: "drops <the> connection"}}})
})

func TestServePage(t *testing.T) {
	t.Parallel()
	resp, body := do(t, pageHandler, "GET", "/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": web.ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-cache",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, want := range []string{
		"<title>WebSocket Demo</title>",
		`<label for="message" data-i18n="messageLabel">Send a message</label>`,
		`title="Send message" aria-label="Send message"`,
		"<code>/ws</code>",
		"<code>/ws/drop</code></dt><dd lang=\"en\">drops &lt;the&gt; connection</dd>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// The assets are linked with their version, so they can be cached.
	assets := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(assets) != 3 {
		t.Fatalf("page links %d assets, want icon, style and script: %q", len(assets), assets)
	}
	for _, a := range assets {
		resp, _ := do(t, web.Static(), "GET", strings.ReplaceAll(a[1], "&amp;", "&"), nil)
		if cc := resp.Header.Get("Cache-Control"); resp.StatusCode != 200 || !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: %d, Cache-Control %q; want 200, immutable", a[1], resp.StatusCode, cc)
		}
	}

	t.Run("HEAD", func(t *testing.T) {
		t.Parallel()
		resp, body := do(t, pageHandler, "HEAD", "/", nil)
		if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("HEAD /: %d %q %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("POST", func(t *testing.T) {
		t.Parallel()
		if resp, _ := do(t, pageHandler, "POST", "/", nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("POST /: %d, want 405", resp.StatusCode)
		}
	})
}

// TestPolicyDirectives checks the policy the issue asks for, word by word.
func TestPolicyDirectives(t *testing.T) {
	t.Parallel()
	got := map[string]string{}
	for d := range strings.SplitSeq(web.ContentSecurityPolicy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		got[name] = value
	}
	for name, want := range map[string]string{
		"default-src":     "'self'",
		"script-src":      "'self'",
		"style-src":       "'self'",
		"connect-src":     "'self' ws: wss:",
		"object-src":      "'none'",
		"base-uri":        "'none'",
		"frame-ancestors": "'none'",
	} {
		if got[name] != want {
			t.Errorf("%s %q, want %q", name, got[name], want)
		}
	}
	if strings.Contains(web.ContentSecurityPolicy, "unsafe") {
		t.Errorf("policy allows something unsafe: %s", web.ContentSecurityPolicy)
	}
}

// TestNoInlineCode checks that the page needs no CSP exception: no inline
// script or style, no event handler attributes.
func TestNoInlineCode(t *testing.T) {
	t.Parallel()
	_, body := do(t, pageHandler, "GET", "/", nil)
	for _, tag := range regexp.MustCompile(`<script\b[^>]*>`).FindAllString(body, -1) {
		if !strings.Contains(tag, ` src="/static/`) {
			t.Errorf("page has a script that is not from /static/: %s", tag)
		}
	}
	for _, re := range []string{
		`<script\b[^>]*>[^<]`,              // a script with content
		`<style`,                           // a style element
		`\sstyle=`,                         // a style attribute
		`\son[a-z]+=`,                      // an event handler attribute
		`(?i)javascript:`,                  // a javascript: URL
		`(?i)(?:src|href)="(?:https?:)?//`, // anything from elsewhere
	} {
		if m := regexp.MustCompile(re).FindString(body); m != "" {
			t.Errorf("page has %q (%s)", m, re)
		}
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	h := web.Static()
	_, page := do(t, pageHandler, "GET", "/", nil)
	version := regexp.MustCompile(`/static/app\.js\?v=([0-9a-f]+)`).FindStringSubmatch(page)
	if version == nil {
		t.Fatal("page does not link /static/app.js?v=…")
	}
	tests := []struct {
		name, target string
		header       http.Header
		status       int
		ctype, cache string
		bodyHas      string
	}{
		{"script", "/static/app.js", nil, 200, "text/javascript; charset=utf-8", "no-cache", "export const messages"},
		{"versioned script", "/static/app.js?v=" + version[1], nil, 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "export const messages"},
		{"old version", "/static/app.js?v=0000", nil, 200, "text/javascript; charset=utf-8", "no-cache", ""},
		{"style", "/static/style.css", nil, 200, "text/css; charset=utf-8", "no-cache", "prefers-color-scheme"},
		{"icon", "/static/icon.svg", nil, 200, "image/svg+xml", "no-cache", "<svg"},
		{"revalidated", "/static/app.js", http.Header{"If-None-Match": {`"` + version[1] + `"`}}, 304, "", "no-cache", ""},
		{"the page is not an asset", "/static/index.html", nil, 404, "", "", ""},
		{"no listing", "/static/", nil, 404, "", "", ""},
		{"no subdirectories", "/static/x/app.js", nil, 404, "", "", ""},
		{"not a file", "/static/nope.js", nil, 404, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, h, "GET", tt.target, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s: %d, want %d", tt.target, resp.StatusCode, tt.status)
			}
			if tt.ctype != "" && resp.Header.Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tt.ctype)
			}
			if tt.cache != "" && resp.Header.Get("Cache-Control") != tt.cache {
				t.Errorf("Cache-Control %q, want %q", resp.Header.Get("Cache-Control"), tt.cache)
			}
			if tt.status == 200 && resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", resp.Header.Get("X-Content-Type-Options"))
			}
			if !strings.Contains(body, tt.bodyHas) {
				t.Errorf("body lacks %q", tt.bodyHas)
			}
		})
	}
	if resp, _ := do(t, h, "POST", "/static/app.js", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

// TestServerPage checks the page as the server serves it at /, with its
// test endpoints listed or not.
func TestServerPage(t *testing.T) {
	t.Parallel()
	for _, noScenarios := range []bool{false, true} {
		s, err := server.New(server.Config{NoScenarios: noScenarios})
		if err != nil {
			t.Fatal(err)
		}
		resp, body := do(t, s.Handler(), "GET", "/", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != web.ContentSecurityPolicy {
			t.Fatalf("GET /: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
		if !strings.Contains(body, "<title>WebSocket Demo</title>") {
			t.Fatalf("GET / is not the demo page:\n%s", body)
		}
		if listed := strings.Contains(body, "<code>/ws/silent</code>"); listed == noScenarios {
			t.Errorf("NoScenarios=%v: scenarios listed=%v", noScenarios, listed)
		}
	}
}
