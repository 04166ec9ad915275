package htmlreport

import (
	"fmt"
	"html/template"
	"io"

	"github.com/sipwall/sipwall/internal/lab"
)

// runColors are the three runs' colours: sipwall, the article's ruleset, no
// firewall.
var runColors = []string{"#2f6fb5", "#d08a1e", "#8a93a3"}

// LabBar is one bar of the answers-to-attackers chart.
type LabBar struct {
	X, Y, W, H float64
	Color      string
	Title      string
}

// LabGroup is one attacker's bars and label.
type LabGroup struct {
	LabelX float64
	Label  string
	Bars   []LabBar
}

type labCell struct {
	Path  string // JSON path of the value
	Value any
	Good  bool // the value is what a firewall should give
	Bad   bool
}

type labRow struct {
	Name   string
	Source string
	Cells  []labCell
}

type labPage struct {
	Rep       *lab.Report
	Style     template.CSS
	RunNames  []string
	Colors    []string
	Groups    []LabGroup
	ChartW    float64
	ChartH    float64
	Base      float64
	Max       int
	Attackers []labRow
	Phones    []labRow
	Flood     []labRow
	SSH       []labRow
	Comeback  []labRow
	Passed    bool
}

// Lab writes the lab's report as HTML: the three runs side by side.
func Lab(w io.Writer, rep *lab.Report) error {
	p := &labPage{Rep: rep, Style: style + labStyle, Colors: runColors, ChartH: 240, Base: 180, Passed: rep.Passed()}
	for _, r := range rep.Runs {
		p.RunNames = append(p.RunNames, r.Name)
	}
	if len(rep.Runs) == 0 {
		return labTemplate.Execute(w, p)
	}
	first := rep.Runs[0]

	// SIP answers (or SYN-ACKs) each attacker received, per run.
	p.Max = 1
	for _, r := range rep.Runs {
		for _, a := range r.Attackers {
			if n := answers(a); isSIP(a) && n > p.Max {
				p.Max = n
			}
		}
	}
	// The chart has the SIP attackers; the SYN scanners' SYN-ACKs, on
	// another scale, are in the table only.
	groupW := 24.0 * float64(len(rep.Runs)+1)
	k := 0
	for i, a := range first.Attackers {
		if !isSIP(a) {
			continue
		}
		g := LabGroup{LabelX: 60 + groupW*float64(k) + groupW/2 - 12, Label: a.Name}
		for j, r := range rep.Runs {
			if i >= len(r.Attackers) {
				continue
			}
			n := answers(r.Attackers[i])
			h := float64(n) / float64(p.Max) * (p.Base - 10)
			if n > 0 && h < 2 {
				h = 2
			}
			g.Bars = append(g.Bars, LabBar{
				X: 60 + groupW*float64(k) + 24*float64(j), Y: p.Base - h, W: 20, H: h, Color: runColors[j%len(runColors)],
				Title: fmt.Sprintf("%s, %s: %d %s", a.Name, r.Name, n, unit(a)),
			})
		}
		p.Groups = append(p.Groups, g)
		k++
	}
	p.ChartW = 60 + groupW*float64(k) + 40

	cell := func(path string, v any, good bool) labCell {
		c := labCell{Path: path, Value: v}
		if b, ok := v.(bool); ok {
			c.Good, c.Bad = b == good, b != good
		}
		return c
	}
	for i, a := range first.Attackers {
		row := labRow{Name: a.Name, Source: a.Source}
		for j, r := range rep.Runs {
			if i < len(r.Attackers) {
				field := "sip_answers"
				if !isSIP(a) {
					field = "synack_received"
				}
				n := answers(r.Attackers[i])
				c := labCell{Path: fmt.Sprintf("runs.%d.attackers.%d.%s", j, i, field), Value: n, Good: isSIP(a) && n == 0, Bad: isSIP(a) && n > 0}
				row.Cells = append(row.Cells, c)
			}
		}
		p.Attackers = append(p.Attackers, row)
	}
	for i, ph := range first.Phones {
		reg := labRow{Name: ph.Name + " (" + ph.Transport + ") registered", Source: ph.Source}
		call := labRow{Name: ph.Name + " (" + ph.Transport + ") call answered", Source: ph.Source}
		for j, r := range rep.Runs {
			if i < len(r.Phones) {
				reg.Cells = append(reg.Cells, cell(fmt.Sprintf("runs.%d.phones.%d.registered", j, i), r.Phones[i].Registered, true))
				call.Cells = append(call.Cells, cell(fmt.Sprintf("runs.%d.phones.%d.call_answered", j, i), r.Phones[i].CallAnswered, true))
			}
		}
		p.Phones = append(p.Phones, reg, call)
	}
	flood := []labRow{{Name: "REGISTERs sent"}, {Name: "answered"}, {Name: "rate-limited"}, {Name: "registers and calls 1.5 s later"}}
	ssh := []labRow{{Name: "phones reach SSH"}, {Name: "port scanner reaches SSH before its scan"}, {Name: "port scanner reaches SSH after its scan"}}
	back := []labRow{{Name: "SIP answers to the first scanner back"}, {Name: "first scanner back is blocked"}}
	for j, r := range rep.Runs {
		if r.Flood != nil {
			f := fmt.Sprintf("runs.%d.flood.", j)
			flood[0].Cells = append(flood[0].Cells, labCell{Path: f + "registers_sent", Value: r.Flood.Sent})
			flood[1].Cells = append(flood[1].Cells, labCell{Path: f + "answers", Value: r.Flood.Answers})
			flood[2].Cells = append(flood[2].Cells, cell(f+"rate_limited", r.Flood.RateLimited, true))
			flood[3].Cells = append(flood[3].Cells, cell(f+"registers_after", r.Flood.RegistersAfter, true))
		}
		s := fmt.Sprintf("runs.%d.ssh.", j)
		ssh[0].Cells = append(ssh[0].Cells, cell(s+"phone", r.SSH.Phone, true))
		ssh[1].Cells = append(ssh[1].Cells, labCell{Path: s + "port_scanner_before_scan", Value: r.SSH.ScannerBefore})
		ssh[2].Cells = append(ssh[2].Cells, cell(s+"port_scanner_after_scan", r.SSH.ScannerAfterScan, false))
		c := fmt.Sprintf("runs.%d.comeback.", j)
		back[0].Cells = append(back[0].Cells, labCell{Path: c + "sip_answers", Value: r.Comeback.SIPAnswers, Good: r.Comeback.SIPAnswers == 0, Bad: r.Comeback.SIPAnswers > 0})
		back[1].Cells = append(back[1].Cells, cell(c+"blocked", r.Comeback.Blocked, true))
	}
	if first.Flood != nil {
		flood[0].Source = first.Flood.Source
	}
	back[0].Source = first.Comeback.Source
	p.Flood, p.SSH, p.Comeback = flood, ssh, back
	return labTemplate.Execute(w, p)
}

func isSIP(a *lab.Attacker) bool { return a.SIPSent > 0 || a.SYNSent == 0 }

func answers(a *lab.Attacker) int {
	if isSIP(a) {
		return a.SIPAnswers
	}
	return a.SYNACKs
}

func unit(a *lab.Attacker) string {
	if isSIP(a) {
		return "SIP answers"
	}
	return "SYN-ACKs"
}

const labStyle = `
.yes { color: #1e7b34; font-weight: 600; } .no { color: #b3261e; font-weight: 600; }
td.good { background: #eaf6ee; } td.bad { background: #fbeceb; }
.pass { color: #1e7b34; } .FAIL { color: #b3261e; font-weight: 600; }
`

var labTemplate = template.Must(template.New("lab").Funcs(template.FuncMap{
	"f": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"show": func(v any) string {
		if b, ok := v.(bool); ok {
			if b {
				return "yes"
			}
			return "no"
		}
		return fmt.Sprint(v)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>sipwall lab: {{.Rep.Backend}}</title>
<style>{{.Style}}</style></head>
<body>
<h1>sipwall lab: the same traffic against sipwall, the article's ruleset and no firewall</h1>
<div class="sub">backend <b data-json="backend">{{.Rep.Backend}}</b> · policy {{.Rep.Policy}} · {{printf "%.1f" .Rep.Seconds}} s · {{if .Passed}}<span class="pass">every check passed</span>{{else}}<span class="FAIL">a check failed</span>{{end}}</div>

{{if .Groups}}<h2>SIP answers the scanners got</h2>
<div class="legend">{{range $i, $n := .RunNames}}<span style="background:{{index $.Colors $i}}"></span>{{$n}}{{end}}</div>
<svg id="answers" width="{{f .ChartW}}" height="{{f .ChartH}}" viewBox="0 0 {{f .ChartW}} {{f .ChartH}}" role="img" aria-label="SIP answers per scanner and firewall">
<line class="axis" x1="56" y1="{{f .Base}}" x2="{{f .ChartW}}" y2="{{f .Base}}"/>
<text x="50" y="{{f .Base}}" text-anchor="end">0</text><text x="50" y="14" text-anchor="end">{{.Max}}</text>
{{range .Groups}}{{range .Bars}}<rect x="{{f .X}}" y="{{f .Y}}" width="{{f .W}}" height="{{f .H}}" style="fill:{{.Color}}"><title>{{.Title}}</title></rect>{{end}}
<text x="{{f .LabelX}}" y="{{f $.Base}}" transform="rotate(40 {{f .LabelX}} {{f $.Base}}) translate(6 14)">{{.Label}}</text>
{{end}}</svg>{{end}}

{{define "rows"}}{{range .}}<tr><td>{{.Name}}</td><td><code>{{.Source}}</code></td>{{range .Cells}}<td class="n{{if .Good}} good{{end}}{{if .Bad}} bad{{end}}" data-json="{{.Path}}">{{show .Value}}</td>{{end}}</tr>
{{end}}{{end}}
{{define "head"}}<tr><th></th><th>source</th>{{range .}}<th>{{.}}</th>{{end}}</tr>{{end}}

<h2>Attackers: SIP answers (SYN-ACKs for the SYN scanners)</h2>
<table id="attackers">{{template "head" .RunNames}}{{template "rows" .Attackers}}</table>
<h2>Phones</h2>
<table id="phones">{{template "head" .RunNames}}{{template "rows" .Phones}}</table>
<h2>REGISTER flood</h2>
<table id="flood">{{template "head" .RunNames}}{{template "rows" .Flood}}</table>
<h2>SSH and the trap ports</h2>
<table id="ssh">{{template "head" .RunNames}}{{template "rows" .SSH}}</table>
<h2>The first scanner back after a crowd of others</h2>
<table id="comeback">{{template "head" .RunNames}}{{template "rows" .Comeback}}</table>

<h2>Checks</h2>
<table id="checks"><tr><th>check</th><th>result</th><th>detail</th></tr>
{{range $i, $c := .Rep.Checks}}<tr><td>{{$c.Name}}</td><td class="{{$c.Result}}" data-json="checks.{{$i}}.result">{{$c.Result}}</td><td>{{$c.Detail}}</td></tr>
{{end}}</table>
{{if .Rep.Notes}}<h2>Notes</h2><ul>{{range .Rep.Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
</body></html>
`))
