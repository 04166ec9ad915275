package audit

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Severity ranks a finding. The zero value is Info.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Low
	Medium
	High
)

var severityNames = [...]string{Info: "info", Low: "low", Medium: "medium", High: "high"}

func (s Severity) String() string {
	if s < Info || s > High {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity returns the severity named s ("high", "medium", "low", "info").
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return Info, fmt.Errorf("audit: unknown severity %q", s)
}

// MarshalText writes the severity's name, so JSON carries "high", not 3.
func (s Severity) MarshalText() ([]byte, error) {
	if s < Info || s > High {
		return nil, fmt.Errorf("audit: invalid severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Finding is one thing the audit noticed: what, where, why it matters and
// the change that fixes it.
type Finding struct {
	Severity Severity `json:"severity"`
	// Check is a stable identifier such as "sshd.port22"; scripts may match on it.
	Check string `json:"check"`
	// File and Line locate what was found; Line is 0 when the finding is
	// about a missing setting or a whole file, File is empty when it is not
	// about a file at all.
	File  string `json:"file,omitempty"`
	Line  int    `json:"line,omitempty"`
	Found string `json:"found"`
	Why   string `json:"why"`
	Fix   string `json:"fix"`
}

// Where renders File and Line as "file:line", "file" or "".
func (f Finding) Where() string {
	switch {
	case f.File == "":
		return ""
	case f.Line > 0:
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	default:
		return f.File
	}
}

// Summary counts findings per severity.
type Summary struct {
	High   int `json:"high"`
	Medium int `json:"medium"`
	Low    int `json:"low"`
	Info   int `json:"info"`
}

// Report is the result of an audit.
type Report struct {
	Findings []Finding `json:"findings"`
	Summary  Summary   `json:"summary"`
}

// newReport sorts the findings (most severe first, then by check, file and
// line) and counts them.
func newReport(fs []Finding) *Report {
	slices.SortStableFunc(fs, compareFindings)
	r := &Report{Findings: fs}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for _, f := range fs {
		switch f.Severity {
		case High:
			r.Summary.High++
		case Medium:
			r.Summary.Medium++
		case Low:
			r.Summary.Low++
		default:
			r.Summary.Info++
		}
	}
	return r
}

func compareFindings(a, b Finding) int {
	return cmp.Or(
		cmp.Compare(b.Severity, a.Severity),
		cmp.Compare(a.Check, b.Check),
		cmp.Compare(a.File, b.File),
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Found, b.Found),
	)
}

// HasHigh reports whether any finding is of high severity; the CLI exits
// non-zero then, so the audit can gate a deployment.
func (r *Report) HasHigh() bool { return r.Summary.High > 0 }

// Checks returns the check identifiers of the findings at or above min, in
// report order, one entry per finding.
func (r *Report) Checks(min Severity) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity >= min {
			out = append(out, f.Check)
		}
	}
	return out
}

// WriteJSON writes the report as {"findings":[...],"summary":{...}}.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("audit: write json: %w", err)
	}
	return nil
}

// WriteText writes the report for a human: findings grouped by severity,
// most severe first, then a summary line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for sev := High; sev >= Info; sev-- {
		var group []Finding
		for _, f := range r.Findings {
			if f.Severity == sev {
				group = append(group, f)
			}
		}
		if len(group) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s (%d)\n", strings.ToUpper(sev.String()), len(group))
		for _, f := range group {
			fmt.Fprintf(&b, "  [%s]", f.Check)
			if where := f.Where(); where != "" {
				fmt.Fprintf(&b, " %s", where)
			}
			b.WriteByte('\n')
			writeField(&b, "found", f.Found)
			writeField(&b, "why", f.Why)
			writeField(&b, "fix", f.Fix)
		}
		b.WriteByte('\n')
	}
	s := r.Summary
	fmt.Fprintf(&b, "%d high, %d medium, %d low, %d info\n", s.High, s.Medium, s.Low, s.Info)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("audit: write report: %w", err)
	}
	return nil
}

func writeField(b *strings.Builder, name, text string) {
	if text == "" {
		return
	}
	lines := strings.Split(text, "\n")
	fmt.Fprintf(b, "    %-6s %s\n", name+":", lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(b, "    %-6s %s\n", "", l)
	}
}
