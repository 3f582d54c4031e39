package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// svgText parses b as XML and returns the text of its <text> elements.
func svgText(t testing.TB, b []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var texts []string
	var in bool
	var root string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			in = tok.Name.Local == "text"
		case xml.CharData:
			if in {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			in = false
		}
	}
	if root != "svg" {
		t.Fatalf("root element is %q, want svg", root)
	}
	return texts
}

func readFixture(t testing.TB, name string) *Report {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := readReport(f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRender(t *testing.T) {
	t.Parallel()
	rep := readFixture(t, "small.json")
	var buf bytes.Buffer
	if err := render(rep, &buf); err != nil {
		t.Fatal(err)
	}
	texts := svgText(t, buf.Bytes())
	has := func(want string) bool {
		for _, s := range texts {
			if s == want {
				return true
			}
		}
		return false
	}
	var wants []string
	for _, s := range rep.Servers {
		wants = append(wants, s.Label)
	}
	for _, m := range rep.Measures {
		wants = append(wants, m.Label)
	}
	wants = append(wants,
		"1.73×",                          // wschan's 1 KiB CPU over raw TCP's: 23 / 13.3
		"1.50× (1.03× at the same rate)", // wschan-poll's, and its per_rawtcp_same_rate
		"14.6",                           // wschan's KiB per idle connection
		"no result",                      // wschan-poll has no idle figure
	)
	for _, want := range wants {
		if !has(want) {
			t.Errorf("the SVG has no text %q; it has %q", want, texts)
		}
	}
	title := texts[0]
	for _, want := range []string{"QUICK=1 scripts/bench-peers", "2026-01-02"} {
		if !strings.Contains(title, want) {
			t.Errorf("title %q does not name %q", title, want)
		}
	}
	if bytes.Contains(buf.Bytes(), []byte("font-family:Liberation Sans;")) {
		t.Error("a font-family without a fallback is left in the SVG")
	}
}

// Without a raw TCP result the CPU panel shows microseconds, not ratios.
func TestRenderWithoutRawTCP(t *testing.T) {
	t.Parallel()
	rep := readFixture(t, "small.json")
	var keep []Server
	for _, s := range rep.Servers {
		if s.Name != "rawtcp" {
			keep = append(keep, s)
		}
	}
	rep.Servers = keep
	var buf bytes.Buffer
	if err := render(rep, &buf); err != nil {
		t.Fatal(err)
	}
	texts := strings.Join(svgText(t, buf.Bytes()), "\n")
	for _, want := range []string{"23.0 µs", "no raw TCP result"} {
		if !strings.Contains(texts, want) {
			t.Errorf("the SVG has no text %q", want)
		}
	}
	if strings.Contains(texts, "×") {
		t.Error("ratios drawn without a raw TCP result")
	}
}

func TestReadReportErrors(t *testing.T) {
	t.Parallel()
	valid, err := os.ReadFile(filepath.Join("testdata", "small.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", "| a Markdown table |", "decode report"},
		{"no servers", edit(func(m map[string]any) { delete(m, "servers") }), "no servers"},
		{"no measures", edit(func(m map[string]any) { delete(m, "measures") }), "no measures"},
		{"unknown kind", edit(func(m map[string]any) {
			m["measures"].([]any)[0].(map[string]any)["kind"] = "latency"
		}), `unknown kind "latency"`},
		{"result for an unknown measure", edit(func(m map[string]any) {
			m["measures"] = m["measures"].([]any)[1:]
		}), `result for unknown measure "cpu:binary:1024"`},
		{"a server twice", edit(func(m map[string]any) {
			m["servers"] = append(m["servers"].([]any), m["servers"].([]any)[0])
		}), `server "wschan" listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := readReport(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("readReport: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "report.json")
	b, err := os.ReadFile(filepath.Join("testdata", "small.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		code     int
		out      string // file expected to hold an SVG
		stdout   bool   // the SVG on stdout
		stderrRe string
	}{
		{name: "default output", args: []string{in}, out: filepath.Join(dir, "report.svg")},
		{name: "-o", args: []string{"-o", filepath.Join(dir, "x.svg"), in}, out: filepath.Join(dir, "x.svg")},
		{name: "stdout", args: []string{"-o", "-", in}, stdout: true},
		{name: "no argument", args: nil, code: 2, stderrRe: "usage: chart"},
		{name: "missing file", args: []string{filepath.Join(dir, "none.json")}, code: 1, stderrRe: "no such file"},
		{name: "invalid report", args: []string{bad}, code: 1, stderrRe: "no servers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderrRe) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderrRe)
			}
			if tt.out != "" {
				b, err := os.ReadFile(tt.out)
				if err != nil {
					t.Fatal(err)
				}
				svgText(t, b)
			}
			if tt.stdout {
				svgText(t, stdout.Bytes())
			} else if stdout.Len() > 0 {
				t.Errorf("unexpected stdout: %.100q", stdout.String())
			}
		})
	}
}
