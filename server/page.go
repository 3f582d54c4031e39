package server

import (
	"net/http"

	"github.com/wschan/wschan/server/web"
)

// servePage writes the demo page (package web) for GET /. WebSocket
// upgrades on / never get here: handleRoot sends them to the echo.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	var p web.Page
	if !s.cfg.NoScenarios {
		for _, sc := range Scenarios() {
			p.Endpoints = append(p.Endpoints, web.Endpoint{Path: sc.Path, Summary: sc.Summary})
		}
	}
	web.ServePage(w, r, p)
}

// staticHandler serves the page's assets (app.js, style.css, the icon);
// routes mounts it at "GET /static/".
func (s *Server) staticHandler() http.Handler { return web.Static() }
