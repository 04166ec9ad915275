package htmlreport

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"

	"github.com/sipwall/sipwall/internal/lists"
)

// StatBar is one group of rules in the counters chart.
type StatBar struct {
	Index   int
	Y, W    float64
	What    string
	Key     string
	Packets uint64
}

type listSize struct {
	Name string
	N    int
}

type statsPage struct {
	St     *lists.Stats
	Style  template.CSS
	At     string
	Bars   []StatBar
	ChartH float64
	Lists  []listSize
	Rules  []statRule // busiest first
}

type statRule struct {
	Index int // in the JSON report's rules
	C     lists.Counter
}

// Stats writes the live counters (sipwall stats) as HTML; at is when they
// were read.
func Stats(w io.Writer, st *lists.Stats, at time.Time) error {
	p := &statsPage{St: st, Style: style, At: at.UTC().Format("2006-01-02 15:04:05 UTC")}
	var max uint64 = 1
	for _, g := range st.Groups {
		if g.Packets > max {
			max = g.Packets
		}
	}
	for i, g := range st.Groups {
		p.Bars = append(p.Bars, StatBar{Index: i, Y: float64(i) * 26, W: float64(g.Packets) / float64(max) * 420, What: g.What, Key: g.Key, Packets: g.Packets})
	}
	p.ChartH = float64(len(p.Bars)) * 26
	for name, n := range st.Lists {
		p.Lists = append(p.Lists, listSize{name, n})
	}
	sort.Slice(p.Lists, func(i, j int) bool { return p.Lists[i].Name < p.Lists[j].Name })
	for i, c := range st.Rules {
		p.Rules = append(p.Rules, statRule{i, c})
	}
	sort.SliceStable(p.Rules, func(a, b int) bool { return p.Rules[a].C.Packets > p.Rules[b].C.Packets })
	return statsTemplate.Execute(w, p)
}

var statsTemplate = template.Must(template.New("stats").Funcs(template.FuncMap{
	"f":   func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"add": func(a, b float64) float64 { return a + b },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>sipwall stats</title>
<style>{{.Style}}</style></head>
<body>
<h1>sipwall: the ruleset's counters</h1>
<div class="sub">backend <b data-json="backend">{{.St.Backend}}</b> · counters since the ruleset was loaded, read {{.At}}{{if .St.Note}} · {{.St.Note}}{{end}}</div>

<h2>Lists</h2>
<div class="cards">{{range .Lists}}<div class="card"><b data-json="lists.{{.Name}}">{{.N}}</b><span>{{.Name}}</span></div>{{end}}</div>

{{if .Bars}}<h2>What the rules decided</h2>
<svg id="groups" width="980" height="{{f .ChartH}}" viewBox="0 0 980 {{f .ChartH}}" role="img" aria-label="packets per kind of rule">
{{range .Bars}}<g><title>{{.What}}: {{.Packets}} packets</title><text x="0" y="{{f (add .Y 16)}}">{{.Key}}</text><rect style="fill:#2f6fb5" x="180" y="{{f (add .Y 4)}}" width="{{f .W}}" height="16"/><text x="{{f (add .W 186)}}" y="{{f (add .Y 16)}}">{{.Packets}}</text></g>
{{end}}</svg>
<table id="group-table"><tr><th>kind</th><th>what</th><th>packets</th><th>bytes</th></tr>
{{range $i, $g := .St.Groups}}<tr><td><code>{{$g.Key}}</code></td><td>{{$g.What}}</td><td class="n" data-json="groups.{{$i}}.packets">{{$g.Packets}}</td><td class="n" data-json="groups.{{$i}}.bytes">{{$g.Bytes}}</td></tr>
{{end}}</table>{{end}}

{{if .St.Signatures}}<h2>Scanners listed now, by signature</h2>
<table id="signatures"><tr><th>signature</th><th>sources</th></tr>
{{range $i, $s := .St.Signatures}}<tr><td>{{$s.Signature}}</td><td class="n" data-json="signatures.{{$i}}.sources">{{$s.Sources}}</td></tr>
{{end}}</table>{{end}}

<h2>Rules</h2>
<table id="rules"><tr><th>chain</th><th>#</th><th>rule</th><th>kind</th><th>packets</th><th>bytes</th></tr>
{{range .Rules}}<tr><td>{{.C.Chain}}</td><td class="n">{{.C.Rule}}</td><td>{{.C.Comment}}</td><td><code>{{.C.Kind}}</code></td><td class="n" data-json="rules.{{.Index}}.packets">{{.C.Packets}}</td><td class="n" data-json="rules.{{.Index}}.bytes">{{.C.Bytes}}</td></tr>
{{end}}</table>
</body></html>
`))
