package htmlreport

import (
	"fmt"
	"html/template"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sipwall/sipwall/internal/replay"
)

// chart geometry, in SVG user units.
const (
	chartW, chartH = 960.0, 220.0
	padL, padB     = 56.0, 28.0
	lineW          = 320.0
)

// Bar is one bucket of the packets-over-time chart.
type Bar struct {
	X, W                     float64
	AccY, AccH, DropY, DropH float64
	Title                    string
}

// Tick is an axis label.
type Tick struct {
	X, Y float64
	Text string
}

// Mark is one event on a source's timeline.
type Mark struct {
	X     float64
	Kind  string // knock, ban, drop, list
	Title string
}

// SourceRow is one of the top sources.
type SourceRow struct {
	Index     int // in the JSON report's sources
	S         *replay.Source
	Role      string
	Lists     string
	FirstDrop string
	DropRule  string
	Agents    string
	X1, X2    float64
	Marks     []Mark
}

// RuleRow is one rule's counters.
type RuleRow struct {
	Index int
	R     replay.RuleCount
}

// PhoneRow is a source that reached SIP as a phone or trunk would.
type PhoneRow struct {
	Index     int
	Addr      netip.Addr
	Knocked   bool
	Requests  int
	Accepted  int
	LockedOut bool
}

type replayPage struct {
	Rep         *replay.Report
	Title       string
	Span        string
	Bars        []Bar
	XTicks      []Tick
	YTicks      []Tick
	ChartW      float64
	ChartH      float64
	PadL        float64
	Base        float64
	LineW       float64
	Sources     []SourceRow
	MoreSources int
	Rules       []RuleRow
	ZeroRules   int
	Phones      []PhoneRow
	LockedOut   int
	Style       template.CSS
}

// maxSources is how many sources the report shows (the busiest).
const maxSources = 25

// Replay writes the replay report as HTML. series may be nil (no chart).
func Replay(w io.Writer, rep *replay.Report, series *Series) error {
	p := &replayPage{
		Rep: rep, ChartW: chartW, ChartH: chartH, PadL: padL, Base: chartH - padB, LineW: lineW,
		Title: "sipwall replay: " + strings.Join(rep.Files, ", "),
		Span:  fmt.Sprintf("%s to %s (%s)", rep.First.UTC().Format("2006-01-02 15:04:05"), rep.Last.UTC().Format("15:04:05"), rep.Last.Sub(rep.First).Round(time.Millisecond)),
		Style: style,
	}
	if series != nil {
		p.Bars, p.XTicks, p.YTicks = bars(series)
	}

	// The busiest sources, with a timeline of what happened to each.
	order := make([]int, len(rep.Sources))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rep.Sources[order[a]].Packets > rep.Sources[order[b]].Packets })
	if len(order) > maxSources {
		p.MoreSources = len(order) - maxSources
		order = order[:maxSources]
	}
	locked := map[netip.Addr]bool{}
	for _, a := range rep.Totals.LockedOut {
		locked[a] = true
	}
	x := func(t time.Time) float64 {
		span := rep.Last.Sub(rep.First)
		if span <= 0 {
			return 0
		}
		return float64(t.Sub(rep.First)) / float64(span) * lineW
	}
	for _, i := range order {
		s := rep.Sources[i]
		row := SourceRow{Index: i, S: s, X1: x(s.FirstAt), X2: x(s.LastAt), Role: role(s, locked)}
		var lists []string
		for _, l := range s.Lists {
			lists = append(lists, fmt.Sprintf("%s at +%s", l.List, offset(rep.First, l.At)))
			kind := "ban"
			if l.List == replay.ListAdmitted {
				kind = "knock"
			}
			row.Marks = append(row.Marks, Mark{X: x(l.At), Kind: kind, Title: fmt.Sprintf("%s: entered %s at +%s", s.Addr, l.List, offset(rep.First, l.At))})
		}
		row.Lists = strings.Join(lists, ", ")
		if d := s.FirstDrop; d != nil {
			row.FirstDrop = fmt.Sprintf("+%s by %s #%d: %s", offset(rep.First, d.At), d.Chain, d.Position, ruleName(d.Text))
			row.DropRule = d.Text
			row.Marks = append(row.Marks, Mark{X: x(d.At), Kind: "drop", Title: fmt.Sprintf("%s: first drop at +%s (%s)", s.Addr, offset(rep.First, d.At), d.Text)})
		}
		row.Agents = strings.Join(s.UserAgents, "; ")
		p.Sources = append(p.Sources, row)
	}

	for i, r := range rep.Rules {
		if r.Packets == 0 {
			p.ZeroRules++
			continue
		}
		p.Rules = append(p.Rules, RuleRow{Index: i, R: r})
	}
	sort.SliceStable(p.Rules, func(a, b int) bool { return p.Rules[a].R.Packets > p.Rules[b].R.Packets })

	for i, s := range rep.Sources {
		if !s.Knocked && s.SIPAccepted == 0 {
			continue
		}
		p.Phones = append(p.Phones, PhoneRow{Index: i, Addr: s.Addr, Knocked: s.Knocked, Requests: s.SIPRequests, Accepted: s.SIPAccepted, LockedOut: locked[s.Addr]})
	}
	p.LockedOut = len(rep.Totals.LockedOut)
	return replayTemplate.Execute(w, p)
}

var commentRe = regexp.MustCompile(`comment "([^"]*)"`)

// ruleName is a rule's comment, or its text cut short.
func ruleName(text string) string {
	if m := commentRe.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	if len(text) > 60 {
		return text[:57] + "..."
	}
	return text
}

func role(s *replay.Source, locked map[netip.Addr]bool) string {
	switch {
	case locked[s.Addr]:
		return "phone, locked out"
	case s.Knocked:
		return "phone"
	case s.SIPAccepted > 0:
		return "SIP peer"
	}
	for _, l := range s.Lists {
		if l.List != replay.ListAdmitted {
			return "banned (" + l.List + ")"
		}
	}
	if s.Dropped > 0 && s.Accepted == 0 {
		return "dropped"
	}
	return ""
}

func offset(first, t time.Time) string {
	d := t.Sub(first)
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// bars lays the series out as stacked bars: dropped above accepted.
func bars(s *Series) ([]Bar, []Tick, []Tick) {
	max := 1
	for i := range s.Accepted {
		if n := s.Accepted[i] + s.Dropped[i]; n > max {
			max = n
		}
	}
	n := len(s.Accepted)
	plotW := chartW - padL - 8
	base := chartH - padB
	plotH := base - 10
	w := plotW / float64(n)
	var out []Bar
	for i := range s.Accepted {
		ah := float64(s.Accepted[i]) / float64(max) * plotH
		dh := float64(s.Dropped[i]) / float64(max) * plotH
		from := s.Start.Add(time.Duration(i) * s.Step)
		out = append(out, Bar{
			X: padL + float64(i)*w, W: w * 0.9,
			AccY: base - ah, AccH: ah, DropY: base - ah - dh, DropH: dh,
			Title: fmt.Sprintf("%s +%s: %d accepted, %d dropped", from.UTC().Format("15:04:05.000"), s.Step.Round(time.Millisecond), s.Accepted[i], s.Dropped[i]),
		})
	}
	var xt []Tick
	for _, f := range []float64{0, 0.5, 1} {
		at := s.Start.Add(time.Duration(f * float64(s.Step) * float64(n)))
		xt = append(xt, Tick{X: padL + f*plotW, Y: chartH - 8, Text: at.UTC().Format("15:04:05")})
	}
	yt := []Tick{{X: padL - 6, Y: base, Text: "0"}, {X: padL - 6, Y: base - plotH + 4, Text: fmt.Sprint(max)}}
	return out, xt, yt
}

const style = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d2330; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.sub { color: #5b6475; margin-bottom: 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #d8dce4; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 22px; } .card span { color: #5b6475; font-size: 12px; }
.bad b { color: #b3261e; } .good b { color: #1e7b34; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e7ed; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f6f9; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, monospace; }
.acc { fill: #3c9a5f; } .drop { fill: #c8453b; } .axis { stroke: #8a93a3; } svg text { font: 11px sans-serif; fill: #5b6475; }
.life { stroke: #9aa3b2; stroke-width: 2; } .knock { fill: #1e7b34; } .ban { fill: #b3261e; } .dropmark { stroke: #b3261e; stroke-width: 2; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
.locked { color: #b3261e; font-weight: 600; }
`

var replayTemplate = template.Must(template.New("replay").Funcs(template.FuncMap{
	"f":   func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"sub": func(a, b float64) float64 { return a - b },
	"add": func(a, b float64) float64 { return a + b },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{{.Title}}</title>
<style>{{.Style}}</style></head>
<body>
<h1>{{.Title}}</h1>
<div class="sub">backend <b data-json="backend">{{.Rep.Backend}}</b>{{if .Rep.Guard}} with sipwall guard's inspector{{end}} · {{.Span}} · host {{range $i, $a := .Rep.Local}}{{if $i}}, {{end}}{{$a}}{{end}}{{if not .Rep.Complete}} · <span class="locked">incomplete: see the warnings</span>{{end}}</div>
<div class="cards">
<div class="card"><b data-json="packets">{{.Rep.Packets}}</b><span>packets to the host</span></div>
<div class="card good"><b data-json="accepted">{{.Rep.Accepted}}</b><span>accepted</span></div>
<div class="card bad"><b data-json="dropped">{{.Rep.Dropped}}</b><span>dropped</span></div>
<div class="card bad"><b data-json="totals.scan_attempts_thwarted">{{.Rep.Totals.ScanAttemptsThwarted}}</b><span>scan attempts thwarted</span></div>
<div class="card bad"><b data-json="totals.sources_banned">{{.Rep.Totals.SourcesBanned}}</b><span>sources banned</span></div>
<div class="card good"><b data-json="totals.phones_admitted">{{.Rep.Totals.PhonesAdmitted}}</b><span>phones admitted</span></div>
<div class="card {{if .LockedOut}}bad{{else}}good{{end}}"><b data-json="totals.locked_out.length">{{.LockedOut}}</b><span>phones locked out</span></div>
<div class="card"><b data-json="suppressed">{{.Rep.Suppress}}</b><span>answers not sent</span></div>
</div>

{{if .Bars}}<h2>Packets to the host over time</h2>
<div class="legend"><span style="background:#3c9a5f"></span>accepted<span style="background:#c8453b"></span>dropped</div>
<svg id="timeline" width="{{f .ChartW}}" height="{{f .ChartH}}" viewBox="0 0 {{f .ChartW}} {{f .ChartH}}" role="img" aria-label="packets over time by verdict">
<line class="axis" x1="{{f .PadL}}" y1="{{f .Base}}" x2="{{f .ChartW}}" y2="{{f .Base}}"/>
{{range .Bars}}<g><title>{{.Title}}</title>{{if .AccH}}<rect class="acc" x="{{f .X}}" y="{{f .AccY}}" width="{{f .W}}" height="{{f .AccH}}"/>{{end}}{{if .DropH}}<rect class="drop" x="{{f .X}}" y="{{f .DropY}}" width="{{f .W}}" height="{{f .DropH}}"/>{{end}}</g>
{{end}}{{range .XTicks}}<text x="{{f .X}}" y="{{f .Y}}" text-anchor="middle">{{.Text}}</text>{{end}}
{{range .YTicks}}<text x="{{f .X}}" y="{{f .Y}}" text-anchor="end">{{.Text}}</text>{{end}}
</svg>{{end}}

<h2>Phones and trunks</h2>
{{if .Phones}}<table id="phones"><tr><th>source</th><th>sent the hostname</th><th>SIP requests</th><th>accepted</th><th>state</th></tr>
{{range .Phones}}<tr><td><code>{{.Addr}}</code></td><td>{{if .Knocked}}yes{{else}}no{{end}}</td><td class="n" data-json="sources.{{.Index}}.sip_requests">{{.Requests}}</td><td class="n" data-json="sources.{{.Index}}.sip_accepted">{{.Accepted}}</td><td>{{if .LockedOut}}<span class="locked">locked out</span>{{else}}working{{end}}</td></tr>
{{end}}</table>{{else}}<p>No source reached SIP as a phone or trunk.</p>{{end}}

<h2>Top sources</h2>
<div class="legend"><span style="background:#1e7b34;border-radius:5px"></span>knock (admitted)<span style="background:#b3261e;border-radius:5px"></span>banned or listed<span style="background:#b3261e;width:2px"></span>first drop</div>
<table id="sources"><tr><th>source</th><th>role</th><th>packets</th><th>accepted</th><th>dropped</th><th>SIP requests</th><th>timeline</th><th>lists</th><th>first drop</th><th>user-agents</th></tr>
{{range .Sources}}<tr><td><code>{{.S.Addr}}</code></td><td>{{.Role}}</td><td class="n" data-json="sources.{{.Index}}.packets">{{.S.Packets}}</td><td class="n" data-json="sources.{{.Index}}.accepted">{{.S.Accepted}}</td><td class="n" data-json="sources.{{.Index}}.dropped">{{.S.Dropped}}</td><td class="n" data-json="sources.{{.Index}}.sip_requests">{{.S.SIPRequests}}</td>
<td><svg width="{{f (add $.LineW 12)}}" height="18" viewBox="-6 0 {{f (add $.LineW 12)}} 18"><line class="life" x1="{{f .X1}}" y1="9" x2="{{f .X2}}" y2="9"><title>{{.S.Addr}}: first packet to last</title></line>{{range .Marks}}{{if eq .Kind "drop"}}<line class="dropmark" x1="{{f .X}}" y1="2" x2="{{f .X}}" y2="16"><title>{{.Title}}</title></line>{{else}}<circle class="{{.Kind}}" cx="{{f .X}}" cy="9" r="5"><title>{{.Title}}</title></circle>{{end}}{{end}}</svg></td>
<td>{{.Lists}}</td><td title="{{.DropRule}}">{{.FirstDrop}}</td><td>{{.Agents}}</td></tr>
{{end}}</table>
{{if .MoreSources}}<p>{{.MoreSources}} more sources: <code>sipwall replay --json</code> lists them all.</p>{{end}}

<h2>Rules that matched</h2>
<table id="rules"><tr><th>table</th><th>chain</th><th>#</th><th>rule</th><th>packets</th><th>bytes</th></tr>
{{range .Rules}}<tr><td>{{.R.Family}} {{.R.Table}}</td><td>{{.R.Chain}}</td><td class="n">{{.R.Position}}</td><td><code>{{.R.Text}}</code></td><td class="n" data-json="rules.{{.Index}}.packets">{{.R.Packets}}</td><td class="n" data-json="rules.{{.Index}}.bytes">{{.R.Bytes}}</td></tr>
{{end}}</table>
<p>{{.ZeroRules}} rules matched nothing.</p>
{{if .Rep.Policies}}<h2>Chain policies</h2>
<table id="policies"><tr><th>chain</th><th>policy</th><th>packets</th><th>bytes</th></tr>
{{range $i, $p := .Rep.Policies}}<tr><td>{{$p.Chain}}</td><td>{{$p.Policy}}</td><td class="n" data-json="policies.{{$i}}.packets">{{$p.Packets}}</td><td class="n" data-json="policies.{{$i}}.bytes">{{$p.Bytes}}</td></tr>
{{end}}</table>{{end}}
{{if .Rep.Warnings}}<h2>Warnings</h2><ul>{{range .Rep.Warnings}}<li>{{.}}</li>{{end}}</ul>{{end}}
<p class="sub">Generated by sipwall replay from {{range $i, $f := .Rep.Files}}{{if $i}}, {{end}}{{$f}}{{end}}; {{.Rep.Frames}} frames read.</p>
</body></html>
`))
