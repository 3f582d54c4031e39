package main

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Colours: the wschan servers stand out, the peers share one calm colour,
// the raw TCP baseline is grey.
var (
	colWschan   = color.NRGBA{R: 0xe6, G: 0x61, B: 0x01, A: 0xff} // orange
	colPoll     = color.NRGBA{R: 0xb2, G: 0x18, B: 0x2b, A: 0xff} // dark red
	colPeer     = color.NRGBA{R: 0x6b, G: 0x8e, B: 0xb8, A: 0xff} // slate blue
	colBaseline = color.NRGBA{R: 0xb0, G: 0xb0, B: 0xb0, A: 0xff} // grey
	colText     = color.NRGBA{R: 0x22, G: 0x22, B: 0x22, A: 0xff}
	colFaint    = color.NRGBA{R: 0x66, G: 0x66, B: 0x66, A: 0xff}
)

func barColor(s Server) color.Color {
	switch {
	case s.Role == "wschan" && s.Name == "wschan":
		return colWschan
	case s.Role == "wschan":
		return colPoll
	case s.Role == "baseline":
		return colBaseline
	default:
		return colPeer
	}
}

// Layout, in points.
const (
	width     = 760
	rowHeight = 13
	titleH    = 46 // the title and its subtitle above the panels
	panelPadH = 62 // a panel's own title, x axis and label
	margin    = 8  // around the panels
)

// sans returns a Liberation Sans text style (metrics like Arial's).
func sans(size vg.Length, bold bool) text.Style {
	f := font.Font{Typeface: "Liberation", Variant: "Sans"}
	if bold {
		f.Weight = xfont.WeightBold
	}
	return text.Style{
		Color:   colText,
		Font:    font.From(f, size),
		XAlign:  draw.XLeft,
		YAlign:  draw.YCenter,
		Handler: plot.DefaultTextHandler,
	}
}

// render draws the report as an SVG: on the left, server CPU per echoed
// message as a multiple of the raw TCP echo's, one group of bars per
// workload and one bar per server; on the right, VmRSS per idle connection.
func render(rep *Report, w io.Writer) error {
	cpu := rep.measures("cpu")
	rss := rep.measures("rss")
	n := len(rep.Servers)
	rows := max(len(cpu)*(n+1), len(rss)*(n+1), 1)
	height := vg.Length(titleH + panelPadH + rows*rowHeight)

	c := vgsvg.New(width, height)
	dc := draw.New(c)

	// Title and subtitle.
	title := sans(13, true)
	title.YAlign = draw.YTop
	dc.FillText(title, vg.Point{X: 8, Y: height - 6}, fmt.Sprintf("%s, %s: wschan serve beside WebSocket servers in Go and Node", rep.command(), rep.Date))
	sub := sans(9.5, false)
	sub.Color = colFaint
	sub.YAlign = draw.YTop
	dc.FillText(sub, vg.Point{X: 8, Y: height - 25}, subtitle(rep))

	body := draw.Crop(dc, 0, 0, 0, -titleH)
	var panels []*plot.Plot
	if len(cpu) > 0 {
		p, err := cpuPanel(rep, cpu)
		if err != nil {
			return err
		}
		panels = append(panels, p)
	}
	if len(rss) > 0 {
		p, err := rssPanel(rep, rss)
		if err != nil {
			return err
		}
		panels = append(panels, p)
	}
	// The CPU panel is the wider: it has the most bars.
	if len(panels) == 2 {
		split := vg.Length(width) * 0.56
		panels[0].Draw(draw.Crop(body, margin, split-vg.Length(width), margin, 0))
		panels[1].Draw(draw.Crop(body, split, -margin, margin, 0))
	} else {
		panels[0].Draw(draw.Crop(body, margin, -margin, margin, 0))
	}

	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return fmt.Errorf("write svg: %w", err)
	}
	// vgsvg names the font without a fallback: a viewer without Liberation
	// Sans would use its default, often a serif. Arial has the same metrics.
	out := bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"),
		[]byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
	_, err := w.Write(out)
	return err
}

func subtitle(rep *Report) string {
	s := "lower is better"
	if rep.Machine != "" {
		s += "; " + rep.Machine
	}
	if rep.Rounds > 0 {
		s += fmt.Sprintf("; median of %d round%s", rep.Rounds, plural(rep.Rounds))
	}
	if rep.Conns > 0 {
		s += fmt.Sprintf("; %d ping-pong connections", rep.Conns)
	}
	if v := rep.Versions["wschan"]; v != "" {
		s += "; wschan at " + v
		if rep.Dirty != "" {
			s += " (uncommitted changes)"
		}
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// newPanel returns a plot styled for a panel, with no data yet.
func newPanel(title, xlabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle = sans(11, true)
	p.Title.TextStyle.XAlign = draw.XCenter
	p.Title.Padding = 6
	p.X.Label.Text = xlabel
	p.X.Label.TextStyle = sans(9.5, false)
	p.X.Label.TextStyle.XAlign = draw.XCenter
	p.X.Label.TextStyle.YAlign = draw.YBottom
	p.X.Tick.Label = sans(8.5, false)
	p.X.Tick.Label.XAlign = draw.XCenter
	p.X.Tick.Label.YAlign = draw.YTop
	p.Y.Tick.Label = sans(9, false)
	p.Y.Tick.Label.XAlign = draw.XRight
	p.Y.Tick.Length = 0
	p.Y.LineStyle.Width = 0
	p.X.Min = 0
	p.X.Tick.Marker = plainTicks{}
	p.BackgroundColor = color.White
	return p
}

// plainTicks are plot.DefaultTicks labelled 0, 10, 2.5 rather than 0.00,
// 10.00, 2.50.
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(math.Round(ts[i].Value*1e6)/1e6, 'f', -1, 64)
		}
	}
	return ts
}

// cpuPanel: one group per workload, one bar per server, as a multiple of
// the raw TCP echo's median (or in µs when raw TCP has no result).
func cpuPanel(rep *Report, ms []Measure) (*plot.Plot, error) {
	raw, haveRaw := rep.server("rawtcp")
	perRaw := haveRaw
	for _, m := range ms {
		if r, ok := raw.Results[m.ID]; !ok || r.Median <= 0 {
			perRaw = false
		}
	}
	var p *plot.Plot
	if perRaw {
		p = newPanel("Server CPU per echoed message", "× the raw TCP echo's CPU per message")
	} else {
		p = newPanel("Server CPU per echoed message", "µs of server CPU per message (no raw TCP result)")
	}
	var bars hbars
	var ticks []plot.Tick
	var xmax float64
	y := 0.0
	for _, m := range ms {
		bars.headings = append(bars.headings, heading{y: y, text: m.Label})
		y--
		for _, s := range rep.Servers {
			b := hbar{y: y, color: barColor(s), bold: s.Role == "wschan"}
			r, ok := s.Results[m.ID]
			switch {
			case !ok:
				b.text = "no result"
				b.missing = true
			case perRaw:
				b.v = r.Median / raw.Results[m.ID].Median
				b.text = fmt.Sprintf("%.2f×", b.v)
				if r.PerRawTCPSameRate != nil {
					// Against the raw echo at this server's own rate, not
					// at rawload's higher one (scripts/bench-peers, SAME_RATE).
					b.text += fmt.Sprintf(" (%.2f× at the same rate)", *r.PerRawTCPSameRate)
				}
			default:
				b.v = r.Median
				b.text = fmt.Sprintf("%.1f µs", b.v)
			}
			xmax = math.Max(xmax, b.v)
			bars.bars = append(bars.bars, b)
			ticks = append(ticks, plot.Tick{Value: y, Label: s.label()})
			y--
		}
	}
	p.Add(&bars)
	if perRaw {
		one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: 0.5}, {X: 1, Y: y + 0.5}})
		if err != nil {
			return nil, err
		}
		one.Color = colFaint
		one.Width = 0.6
		one.Dashes = []vg.Length{2, 2}
		p.Add(one)
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = y+0.5, 0.5
	p.X.Max = math.Max(xmax, 1) * 1.02
	return p, nil
}

// rssPanel: one bar per server per idle-connection measure (there is one).
func rssPanel(rep *Report, ms []Measure) (*plot.Plot, error) {
	p := newPanel("Memory per idle connection", "KiB of server RSS per idle connection")
	var bars hbars
	var ticks []plot.Tick
	var xmax float64
	y := 0.0
	for _, m := range ms {
		bars.headings = append(bars.headings, heading{y: y, text: m.Label})
		y--
		for _, s := range rep.Servers {
			b := hbar{y: y, color: barColor(s), bold: s.Role == "wschan"}
			if r, ok := s.Results[m.ID]; ok {
				b.v = r.Median
				b.text = fmt.Sprintf("%.1f", r.Median)
			} else {
				b.text = "no result"
				b.missing = true
			}
			xmax = math.Max(xmax, b.v)
			bars.bars = append(bars.bars, b)
			ticks = append(ticks, plot.Tick{Value: y, Label: s.label()})
			y--
		}
	}
	p.Add(&bars)
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = y+0.5, 0.5
	p.X.Max = math.Max(xmax, 1) * 1.02
	return p, nil
}

// hbars is a plot.Plotter of horizontal bars from x = 0, each labelled
// with its value at its end, and group headings at x = 0. Its glyph boxes
// make the plot leave room for the labels.
type hbars struct {
	bars     []hbar
	headings []heading
}

type hbar struct {
	y, v    float64
	color   color.Color
	text    string
	bold    bool
	missing bool
}

type heading struct {
	y    float64
	text string
}

const barThickness = 0.72 // of a row

var (
	_ plot.Plotter    = (*hbars)(nil)
	_ plot.DataRanger = (*hbars)(nil)
	_ plot.GlyphBoxer = (*hbars)(nil)
)

func (h *hbars) label(b hbar) text.Style {
	sty := sans(8.5, b.bold)
	if b.missing {
		sty.Color = colFaint
	}
	return sty
}

func headingStyle() text.Style { return sans(9.5, true) }

const labelGap = 3 // points between a bar's end and its label

// Plot implements plot.Plotter.
func (h *hbars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, b := range h.bars {
		x0, x1 := trX(0), trX(b.v)
		y0, y1 := trY(b.y-barThickness/2), trY(b.y+barThickness/2)
		if !b.missing {
			c.FillPolygon(b.color, c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
		}
		c.FillText(h.label(b), vg.Point{X: x1 + labelGap, Y: trY(b.y)}, b.text)
	}
	for _, hd := range h.headings {
		c.FillText(headingStyle(), vg.Point{X: trX(0), Y: trY(hd.y)}, hd.text)
	}
}

// DataRange implements plot.DataRanger.
func (h *hbars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, ymin, ymax = 0, math.Inf(1), math.Inf(-1)
	for _, b := range h.bars {
		xmax = math.Max(xmax, b.v)
		ymin = math.Min(ymin, b.y-0.5)
		ymax = math.Max(ymax, b.y+0.5)
	}
	for _, hd := range h.headings {
		ymin = math.Min(ymin, hd.y-0.5)
		ymax = math.Max(ymax, hd.y+0.5)
	}
	return xmin, xmax, ymin, ymax
}

// GlyphBoxes implements plot.GlyphBoxer: room for each label to the right
// of its bar, and for each heading.
func (h *hbars) GlyphBoxes(p *plot.Plot) []plot.GlyphBox {
	var boxes []plot.GlyphBox
	for _, b := range h.bars {
		w := h.label(b).Width(b.text)
		boxes = append(boxes, plot.GlyphBox{
			X:         p.X.Norm(b.v),
			Y:         p.Y.Norm(b.y),
			Rectangle: vg.Rectangle{Min: vg.Point{X: 0, Y: 0}, Max: vg.Point{X: labelGap + w, Y: 0}},
		})
	}
	for _, hd := range h.headings {
		w := headingStyle().Width(hd.text)
		boxes = append(boxes, plot.GlyphBox{
			X:         p.X.Norm(0),
			Y:         p.Y.Norm(hd.y),
			Rectangle: vg.Rectangle{Min: vg.Point{X: 0, Y: 0}, Max: vg.Point{X: w, Y: 0}},
		})
	}
	return boxes
}
