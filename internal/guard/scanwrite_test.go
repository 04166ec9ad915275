package guard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sipwall/sipwall/internal/guard/jail"
)

// generic decodes JSON into maps and slices, for comparing documents.
func generic(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// TestWriteJSONIsTheReport: the streamed document says what Scan's Report
// says, field for field, on the corpus and on inputs with every verdict.
func TestWriteJSONIsTheReport(t *testing.T) {
	data, err := os.ReadFile(corpusPath)
	if err != nil {
		t.Fatalf("the corpus is part of the test: %v", err)
	}
	line := func(ts, addr string) string {
		return "[" + ts + "] NOTICE[1] manager.c: " + addr + " failed to authenticate as 'admin'\n"
	}
	var many strings.Builder
	for i := range 12 {
		many.WriteString(line(fmt.Sprintf("2024-03-01 10:%02d:00", i), "192.0.2.1"))
	}
	many.WriteString(line("2024-03-01 10:00:00", "127.0.0.1") + line("2024-03-01 10:00:00", "10.1.1.1"))
	many.WriteString("NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '\"28\" <sip:28@x>' failed for '2001:db8::7:5060' - Wrong password\n")
	cases := []struct {
		name   string
		inputs func() []Input
		opts   Options
	}{
		{"corpus", func() []Input {
			return []Input{{Name: "corpus \"log\"", R: bytes.NewReader(data), ModTime: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}}
		}, Options{Location: time.UTC}},
		{"verdicts", func() []Input {
			return []Input{{Name: "b", R: strings.NewReader(many.String())}, {Name: "a", R: bytes.NewReader(data)}}
		}, Options{Location: time.FixedZone("X", 3600), Jail: jail.Config{MaxRetry: 3, NeverBan: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			opts.KeepMatches = true
			rep, err := Scan(context.Background(), c.inputs(), opts)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := WriteJSON(context.Background(), &got, c.inputs(), c.opts); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(generic(t, want), generic(t, got.Bytes())); diff != "" {
				t.Errorf("WriteJSON and Scan differ (-Scan +WriteJSON):\n%s", diff)
			}
			if !bytes.HasPrefix(got.Bytes(), []byte("{\"matches\": [\n{")) {
				t.Errorf("the matches do not come first: %.80s", got.Bytes())
			}
			var bans int
			for _, a := range rep.Addresses {
				bans += a.Bans
			}
			if bans == 0 {
				t.Error("no ban in the case: the comparison misses the ban fields")
			}
		})
	}
}

// TestWriteJSONStreams: matches reach the writer while the input is still
// being read.
func TestWriteJSONStreams(t *testing.T) {
	pr, pw := io.Pipe()
	out, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- WriteJSON(context.Background(), outW, []Input{{Name: "live", R: pr}}, Options{Location: time.UTC})
		outW.Close()
	}()
	written := make(chan struct{})
	go func() {
		defer close(written)
		w := bufio.NewWriter(pw)
		for i := range 2000 {
			fmt.Fprintf(w, "[2024-03-01 10:00:00] NOTICE[1] manager.c: 192.0.%d.%d failed to authenticate as 'admin'\n", i/256, i%256)
		}
		w.Flush()
		// The input stays open until the test has seen matches.
	}()
	r := bufio.NewReader(out)
	first, err := r.ReadString('\n')
	if err != nil || first != "{\"matches\": [\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	m, err := r.ReadString('\n')
	if err != nil || !strings.Contains(m, `"addr": "192.0.0.0"`) {
		t.Fatalf("first match %q, %v", m, err)
	}
	// Seen before the input ended; now end it.
	restc := make(chan []byte)
	go func() {
		rest, _ := io.ReadAll(r)
		restc <- rest
	}()
	<-written
	pw.Close()
	rest := <-restc
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	doc := generic(t, append([]byte(first+m), rest...)).(map[string]any)
	if n := len(doc["matches"].([]any)); n != 2000 {
		t.Errorf("%d matches", n)
	}
	if n := len(doc["addresses"].([]any)); n != 2000 {
		t.Errorf("%d addresses", n)
	}
}

// TestWriteText: the human report of a scan with every verdict.
func TestWriteText(t *testing.T) {
	line := func(ts, addr string) string {
		return "[" + ts + "] NOTICE[1] manager.c: " + addr + " failed to authenticate as 'admin'\n"
	}
	in := line("2024-03-01 10:00:00", "192.0.2.1") + line("2024-03-01 10:01:00", "192.0.2.1") + line("2024-03-01 10:02:00", "192.0.2.1") +
		line("2024-03-01 10:00:00", "127.0.0.1") + line("2024-03-01 10:00:00", "2001:db8::1") +
		"[2024-03-01 10:05:00] NOTICE[1] chan_sip.c: Registration from 'x' failed for 'nowhere' - Wrong password\n"
	var out bytes.Buffer
	err := WriteText(context.Background(), &out, []Input{{Name: "f.log", R: strings.NewReader(in)}}, Options{Location: time.UTC, Jail: jail.Config{MaxRetry: 3}}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := `Thresholds: 3 failures within 10m0s ban for 1h0m0s (repeat bans x2, at most 168h0m0s)

FILE:LINE  EVENT  ADDRESS  TIME
f.log:1  AMILoginFailed  192.0.2.1  2024-03-01 10:00:00
f.log:2  AMILoginFailed  192.0.2.1  2024-03-01 10:01:00
f.log:3  AMILoginFailed  192.0.2.1  2024-03-01 10:02:00
f.log:4  AMILoginFailed  127.0.0.1  2024-03-01 10:00:00
f.log:5  AMILoginFailed  2001:db8::1  2024-03-01 10:00:00

FILE   LINES  MATCHED  UNMATCHED CANDIDATES  OVERLONG
f.log  6      5        1                     0

EVENT           MATCHES
AMILoginFailed  5

ADDRESS      FAILURES  VERDICT  BANNED AT            BANS  DETAIL
192.0.2.1    3         ban      2024-03-01 10:02:00  1     last ban 1h0m0s
2001:db8::1  1         watch    -                    -
127.0.0.1    1         ignored  -                    -     loopback

NOT ATTRIBUTED  EVENT               REASON
f.log:6         RegistrationFailed  the address field is not an IP address
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("text report (-want +got):\n%s", diff)
	}
}

// failLines returns n failure lines, line i from source src(i), a second
// apart.
func failLines(n int, src func(i int) netip.Addr) string {
	var b strings.Builder
	t := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := range n {
		fmt.Fprintf(&b, "[%s] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '%s:5060' - Wrong password\n",
			t.Add(time.Duration(i)*time.Second).Format(time.DateTime), src(i))
	}
	return b.String()
}

func v4(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}) }

// TestScanLineAllocs: a line costs no allocation, whether it matches a
// known source, is rejected or is no failure at all.
func TestScanLineAllocs(t *testing.T) {
	s, err := newScanner(Options{Location: time.UTC, MaxCandidates: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Name: "f", ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	fs := FileSummary{}
	var matches int
	f := fileScan{s: s, in: &in, fs: &fs, onMatch: func(m *Match) error { matches++; return nil }}
	lines := [][]byte{
		[]byte("[2024-03-01 10:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '192.0.2.1:5060' - Wrong password"),
		[]byte("[Mar  1 10:00:00] SECURITY[1204] res_security_log.c: SecurityEvent=\"InvalidPassword\",EventTV=\"1\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"2\",AccountID=\"1\",SessionID=\"0x1\",LocalAddress=\"IPV4/UDP/192.0.2.10/5060\",RemoteAddress=\"IPV6/UDP/2001:db8::1/5084\""),
		[]byte("[2024-03-01 10:00:00] NOTICE[1] chan_sip.c: Registration from 'x' failed for 'nowhere' - Wrong password"),
		[]byte("[2024-03-01 10:00:00] VERBOSE[1][C-00000001] pbx.c: Executing [100@from-internal:1] Dial(\"PJSIP/1001-00000001\", \"PJSIP/100,30\") in new stack"),
		[]byte("NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '\"28\" <sip:28@x>' failed for '192.0.2.3:7998' - Wrong password"),
	}
	for i, l := range lines {
		f.line(i+1, l) // the sources are known, the candidate list full
	}
	s.fails = slices.Grow(s.fails, 10000)
	for i, l := range lines {
		if n := testing.AllocsPerRun(1000, func() { f.line(i+1, l) }); n != 0 {
			t.Errorf("line %d: %v allocations", i+1, n)
		}
	}
	if matches == 0 || fs.UnmatchedCandidate == 0 {
		t.Fatalf("the lines did not exercise the paths: %d matches, %d candidates", matches, fs.UnmatchedCandidate)
	}
}

// TestScanAllocsPerSource: a whole scan (reading, the jail, the JSON
// report) costs O(1) allocations per source and none per line.
func TestScanAllocsPerSource(t *testing.T) {
	scan := func(log string) float64 {
		return testing.AllocsPerRun(2, func() {
			if err := WriteJSON(context.Background(), io.Discard, []Input{{Name: "f", R: strings.NewReader(log)}}, Options{Location: time.UTC}); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Sources: each fails 6 times (so each is banned once).
	perSource := func(n int) float64 { return scan(failLines(6*n, func(i int) netip.Addr { return v4(i % n) })) }
	a1, a2 := perSource(1000), perSource(8000)
	if per := (a2 - a1) / 7000; per > 12 {
		t.Errorf("%.1f allocations per source (%v for 1000 sources, %v for 8000)", per, a1, a2)
	} else {
		t.Logf("%.2f allocations per source", per)
	}
	// Lines of one source.
	l1, l2 := scan(failLines(1000, func(int) netip.Addr { return v4(1) })), scan(failLines(20000, func(int) netip.Addr { return v4(1) }))
	if per := (l2 - l1) / 19000; per > 0.01 {
		t.Errorf("%.3f allocations per line (%v for 1000 lines, %v for 20000)", per, l1, l2)
	}
}
