package guard

import (
	"bufio"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sipwall/sipwall/internal/guard/jail"
)

const corpusPath = "../../../shared/corpus/asterisk-logs/fail2ban-asterisk.log"

func TestScanCorpusAttributesEveryAnnotatedLine(t *testing.T) {
	data, err := os.ReadFile(corpusPath)
	if err != nil {
		t.Fatalf("the corpus is part of the test: %v", err)
	}
	// Expected host per line number, from the failJSON comments.
	want := map[int]string{}
	s := bufio.NewScanner(strings.NewReader(string(data)))
	n, host := 0, ""
	for s.Scan() {
		n++
		l := s.Text()
		if rest, ok := strings.CutPrefix(l, "# failJSON:"); ok {
			var j struct {
				Host string `json:"host"`
			}
			if err := json.Unmarshal([]byte(rest), &j); err != nil {
				t.Fatal(err)
			}
			host = j.Host
			continue
		}
		if host != "" && !strings.HasPrefix(l, "#") && strings.TrimSpace(l) != "" {
			want[n] = host
			host = ""
		}
	}
	rep, err := Scan(context.Background(), []Input{{Name: "corpus.log", R: strings.NewReader(string(data)), ModTime: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}}, Options{Location: time.UTC, KeepMatches: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, m := range rep.Matches {
		if m.File != "corpus.log" || m.Event == "" {
			t.Errorf("match %+v", m)
		}
		got[m.Line] = m.Addr.String()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attribution by line (-want +got):\n%s", diff)
	}
	if rep.Lines != n || rep.Matched != len(want) || rep.Files[0].Matched != len(want) {
		t.Errorf("counts: lines %d (want %d), matched %d (want %d)", rep.Lines, n, rep.Matched, len(want))
	}
	// 1.2.3.4 fails many times within ten minutes on 2016-05-23.
	var a *Address
	for i := range rep.Addresses {
		if rep.Addresses[i].Addr == netip.MustParseAddr("1.2.3.4") {
			a = &rep.Addresses[i]
		}
	}
	if a == nil || a.Verdict != VerdictBan || a.BannedAt.IsZero() || a.Bans == 0 {
		t.Fatalf("1.2.3.4: %+v", a)
	}
	if rep.Addresses[0].Verdict != VerdictBan {
		t.Errorf("bans are not listed first: %+v", rep.Addresses[0])
	}
}

func TestScanThresholdsAcrossFiles(t *testing.T) {
	line := func(ts, addr string) string {
		return "[" + ts + "] NOTICE[1] manager.c: " + addr + " failed to authenticate as 'admin'\n"
	}
	// Failures of 192.0.2.1 split over a rotated and a current file, listed
	// current first: the scan orders them by time.
	current := line("2024-03-01 10:03:00", "192.0.2.1") + line("2024-03-01 10:04:00", "192.0.2.1") +
		line("2024-03-01 10:00:00", "127.0.0.1") + line("2024-03-01 10:00:01", "127.0.0.1") + line("2024-03-01 10:00:02", "127.0.0.1") +
		line("2024-03-01 10:00:00", "10.1.1.1") + line("2024-03-01 10:00:01", "10.1.1.1") + line("2024-03-01 10:00:02", "10.1.1.1")
	rotated := line("2024-03-01 10:01:00", "192.0.2.1") + line("2024-03-01 09:00:00", "192.0.2.9") +
		line("2024-03-01 09:30:00", "192.0.2.9") + "[2024-03-01 10:05:00] NOTICE[1] res_pjsip/pjsip_distributor.c: Request from 'x' failed for '192.0.2.7:5060' (callid: a' failed for '192.0.2.8:1' (callid: b) - No matching endpoint found\n"
	opts := Options{Location: time.UTC, Jail: jail.Config{MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour,
		NeverBan: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	opts.KeepMatches = true
	rep, err := Scan(context.Background(), []Input{
		{Name: "messages", R: strings.NewReader(current)},
		{Name: "messages.1", R: strings.NewReader(rotated)},
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]string{}
	for _, a := range rep.Addresses {
		verdicts[a.Addr.String()] = a.Verdict + " " + a.Reason
	}
	want := map[string]string{
		"192.0.2.1": "ban ",
		"192.0.2.9": "watch ",
		"127.0.0.1": "ignored loopback",
		"10.1.1.1":  "ignored never-ban 10.0.0.0/8",
	}
	if diff := cmp.Diff(want, verdicts); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	for _, a := range rep.Addresses {
		if a.Addr.String() == "192.0.2.1" {
			if !a.BannedAt.Equal(time.Date(2024, 3, 1, 10, 4, 0, 0, time.UTC)) || a.BanTime != "1h0m0s" {
				t.Errorf("192.0.2.1 ban: %+v", a)
			}
		}
	}
	if rep.UnmatchedCandidate != 1 || len(rep.Candidates) != 1 || rep.Candidates[0].File != "messages.1" || rep.Candidates[0].Line != 4 {
		t.Errorf("candidates: %d %+v", rep.UnmatchedCandidate, rep.Candidates)
	}
	if rep.Events["AMILoginFailed"] != 11 || len(rep.Events) != 1 {
		t.Errorf("events %v", rep.Events)
	}
	if rep.Lines != 12 || rep.Matched != 11 {
		t.Errorf("lines %d matched %d", rep.Lines, rep.Matched)
	}
}

func TestScanJSONShape(t *testing.T) {
	in := "[2024-03-01 10:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '192.0.2.5:5060' - Wrong password\n"
	rep, err := Scan(context.Background(), []Input{{Name: "f.log", R: strings.NewReader(in)}}, Options{Location: time.UTC, KeepMatches: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var generic struct {
		Matches   []map[string]any `json:"matches"`
		Addresses []map[string]any `json:"addresses"`
		Lines     int              `json:"lines"`
		Matched   int              `json:"matched"`
		Unmatched *int             `json:"unmatched_candidate"`
	}
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	if len(generic.Matches) != 1 || generic.Lines != 1 || generic.Matched != 1 || generic.Unmatched == nil {
		t.Fatalf("json: %s", b)
	}
	m := generic.Matches[0]
	wantM := map[string]any{"file": "f.log", "line": 1.0, "event": "RegistrationFailed", "addr": "192.0.2.5", "port": 5060.0, "time": "2024-03-01T10:00:00Z"}
	if diff := cmp.Diff(wantM, m); diff != "" {
		t.Errorf("match json (-want +got):\n%s", diff)
	}
	if a := generic.Addresses[0]; a["addr"] != "192.0.2.5" || a["verdict"] != "watch" || a["failures"] != 1.0 {
		t.Errorf("address json: %v", a)
	}
}

func TestFixTimeYear(t *testing.T) {
	mod := time.Date(2024, 1, 5, 0, 0, 0, 0, time.UTC)
	rep, err := Scan(context.Background(), []Input{{Name: "syslog", ModTime: mod, R: strings.NewReader(
		"Dec 31 23:59:00 pbx asterisk[1]: NOTICE[2] manager.c: 192.0.2.1 failed to authenticate as 'a'\n" +
			"Jan  4 10:00:00 pbx asterisk[1]: NOTICE[2] manager.c: 192.0.2.1 failed to authenticate as 'a'\n")}}, Options{Location: time.UTC, KeepMatches: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Matches[0].Time.Format(time.DateTime); got != "2023-12-31 23:59:00" {
		t.Errorf("December line: %s", got)
	}
	if got := rep.Matches[1].Time.Format(time.DateTime); got != "2024-01-04 10:00:00" {
		t.Errorf("January line: %s", got)
	}
}

// BenchmarkScan measures the whole offline analysis (reading, matching,
// jail, report) on the corpus's log lines repeated 2000 times.
func BenchmarkScan(b *testing.B) {
	data, err := os.ReadFile(corpusPath)
	if err != nil {
		b.Fatal(err)
	}
	var one strings.Builder
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			one.WriteString(l + "\n")
		}
	}
	big := strings.Repeat(one.String(), 2000)
	lines := strings.Count(big, "\n")
	for _, keep := range []bool{false, true} {
		name := "summary"
		if keep {
			name = "with-matches"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(big)))
			for b.Loop() {
				if _, err := Scan(context.Background(), []Input{{Name: "big", R: strings.NewReader(big)}}, Options{Location: time.UTC, KeepMatches: keep}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(lines)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
