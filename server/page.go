package server

import (
	"html/template"
	"net/http"
)

// The demo app's page arrives in its own issue; until then / explains the
// endpoints.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>wschan echo server</title></head>
<body>
<h1>wschan echo server</h1>
<p>Connect a WebSocket client to <code>{{.WS}}/ws</code>: every message comes back unchanged, same type, in order.</p>
{{if .Scenarios}}<h2>Test scenarios</h2><ul>
{{range .Scenarios}}<li><code>{{.Path}}</code>: {{.Summary}}</li>
{{end}}</ul>{{end}}
<p><a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> · <a href="/metrics">/metrics</a></p>
</body></html>
`))

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	var sc []Scenario
	if !s.cfg.NoScenarios {
		sc = Scenarios()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'")
	_ = pageTmpl.Execute(w, struct {
		WS        string
		Scenarios []Scenario
	}{scheme + "://" + r.Host, sc})
}
