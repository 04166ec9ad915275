package htmlreport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/cli"
	"github.com/sipwall/sipwall/internal/htmlreport"
	"github.com/sipwall/sipwall/internal/lab"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

const corpus = "../../../shared/corpus/pcap"

// chromium returns the browser, or skips (fails in CI, where scripts/test
// installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SIPWALL_REQUIRE_ROOT") == "1" {
		t.Fatal("chromium is not installed (scripts/test installs it)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// browse loads page in headless chromium and returns the DOM after loading
// and the console messages.
func browse(t *testing.T, browser, page string, extra ...string) (dom, console string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0", "--hide-scrollbars"}, extra...)
	args = append(args, "file://"+page)
	cmd := exec.CommandContext(ctx, browser, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	var msgs []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") {
			msgs = append(msgs, l)
		}
	}
	return stdout.String(), strings.Join(msgs, "\n")
}

func run(t *testing.T, args ...string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Main(context.Background(), args, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("sipwall %v: exit %d\n%s", args, code, errb.String())
	}
	return out.Bytes()
}

// lookup finds a data-json path (totals.dropped, sources.3.packets,
// totals.locked_out.length) in a decoded JSON report.
func lookup(v any, path string) (string, error) {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return "", fmt.Errorf("no key %q", k)
			}
		case []any:
			if k == "length" {
				v = float64(len(x))
				continue
			}
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(x) {
				return "", fmt.Errorf("no index %q", k)
			}
			v = x[i]
		case nil:
			if k == "length" {
				v = float64(0)
				continue
			}
			return "", fmt.Errorf("%q of null", k)
		default:
			return "", fmt.Errorf("%q of a %T", k, v)
		}
	}
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		if x {
			return "yes", nil
		}
		return "no", nil
	}
	return fmt.Sprint(v), nil
}

// compareDOM checks every data-json element of the DOM against the JSON
// report and returns how many it compared.
func compareDOM(t *testing.T, dom string, raw []byte) int {
	t.Helper()
	var report any
	if err := json.Unmarshal(raw, &report); err != nil {
		t.Fatal(err)
	}
	fields := dataJSON.FindAllStringSubmatch(dom, -1)
	for _, m := range fields {
		want, err := lookup(report, m[1])
		if err != nil {
			t.Errorf("data-json=%q: %v", m[1], err)
			continue
		}
		if got := strings.TrimSpace(m[2]); got != want {
			t.Errorf("%s: the page shows %q, the JSON report has %q", m[1], got, want)
		}
	}
	return len(fields)
}

var dataJSON = regexp.MustCompile(`data-json="([^"]+)"[^>]*>([^<]*)<`)

// The replay report opens in a real browser with no console message, shows
// the same numbers as --json, and looks like something: a screenshot is
// written and checked to be a full page with colour in it.
func TestReplayReportInChromium(t *testing.T) {
	browser := chromium(t)
	t.Setenv("SSH_CONNECTION", "")
	captures, _ := filepath.Glob(filepath.Join(corpus, "*.pcap"))
	if len(captures) == 0 {
		t.Fatalf("no captures in %s", corpus)
	}
	base := []string{"replay", "-c", "../../examples/lab.yaml", "--local", "192.0.2.10,2001:db8:10::10"}
	page := filepath.Join(t.TempDir(), "replay.html")
	jsonOut := run(t, append(append(base, "--json"), captures...)...)
	run(t, append(append(base, "--html", page), captures...)...)

	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	// Self-contained: nothing is loaded from anywhere.
	for _, ref := range []string{"<script", "src=", "href=", "@import", "url("} {
		if bytes.Contains(html, []byte(ref)) {
			t.Errorf("the report refers to something outside it: %q", ref)
		}
	}

	dom, console := browse(t, browser, page, "--dump-dom")
	if console != "" {
		t.Errorf("console messages:\n%s", console)
	}
	if n := compareDOM(t, dom, jsonOut); n < 40 {
		t.Errorf("only %d numbers compared", n)
	}
	var report any
	if err := json.Unmarshal(jsonOut, &report); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="timeline"`, "locked out", "198.51.100.23", "Phones and trunks"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The chart's bars add up to the report's packets.
	var acc, drop int
	for _, m := range regexp.MustCompile(`(\d+) accepted, (\d+) dropped</title>`).FindAllStringSubmatch(dom, -1) {
		a, _ := strconv.Atoi(m[1])
		d, _ := strconv.Atoi(m[2])
		acc, drop = acc+a, drop+d
	}
	r := report.(map[string]any)
	if float64(acc) != r["accepted"].(float64) || float64(drop) != r["dropped"].(float64) {
		t.Errorf("the chart has %d accepted and %d dropped; the report %v and %v", acc, drop, r["accepted"], r["dropped"])
	}

	dir := filepath.Join(os.TempDir(), "sipwall-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "replay.png")
	os.Remove(shot)
	browse(t, browser, page, "--screenshot="+shot, "--window-size=1280,1800")
	checkScreenshot(t, shot, 1280, 1800)
	t.Logf("screenshot: %s", shot)
}

func checkScreenshot(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("screenshot is %v, want %dx%d", b, w, h)
	}
	// Coloured bars and cells, dark text: a rendered report, not a blank
	// page.
	var colour, dark int
	for y := 0; y < h; y += 2 {
		for x := 0; x < w; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			hi, lo := max(r, g, b)>>8, min(r, g, b)>>8
			switch {
			case hi-lo > 80:
				colour++
			case hi < 70:
				dark++
			}
		}
	}
	if colour < 300 || dark < 500 {
		t.Errorf("the screenshot looks empty: %d coloured, %d dark pixels (of every 4th)", colour, dark)
	}
}

// The console check sees what a broken page would log.
func TestConsoleErrorsAreSeen(t *testing.T) {
	browser := chromium(t)
	page := filepath.Join(t.TempDir(), "broken.html")
	if err := os.WriteFile(page, []byte(`<!DOCTYPE html><html><body><script>console.error("broken"); undefinedFunction();</script></body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, console := browse(t, browser, page, "--dump-dom")
	if !strings.Contains(console, "broken") || !strings.Contains(console, "undefinedFunction") {
		t.Errorf("console messages of a broken page not seen:\n%q", console)
	}
}

// The lab's report, from the JSON report of a real lab run (iptables
// backend, testdata/lab-iptables.json), likewise.
func TestLabReportInChromium(t *testing.T) {
	browser := chromium(t)
	raw, err := os.ReadFile("testdata/lab-iptables.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep lab.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := htmlreport.Lab(&b, &rep); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "lab.html")
	if err := os.WriteFile(page, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dom, console := browse(t, browser, page, "--dump-dom")
	if console != "" {
		t.Errorf("console messages:\n%s", console)
	}
	n := compareDOM(t, dom, raw)
	if n < 60 {
		t.Errorf("only %d values compared", n)
	}
	for _, want := range []string{`id="answers"`, "svmap", "every check passed", "the article's ruleset leaves IPv6 open"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	dir := filepath.Join(os.TempDir(), "sipwall-screenshots")
	os.MkdirAll(dir, 0o755)
	shot := filepath.Join(dir, "lab.png")
	os.Remove(shot)
	browse(t, browser, page, "--screenshot="+shot, "--window-size=1280,1800")
	checkScreenshot(t, shot, 1280, 1800)
	t.Logf("screenshot: %s", shot)
}

// sipwall stats --html on a live ruleset in a namespace, after real
// packets: the page's numbers are the kernel's, as --json says them.
func TestStatsReportInChromium(t *testing.T) {
	browser := chromium(t)
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "ipset", "nft", "conntrack", "bash")
	bin := filepath.Join(t.TempDir(), "sipwall")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sipwall").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	policyFile, _ := filepath.Abs("../../examples/lab.yaml")
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			srv, inet := nstest.New(t, "hsrv"), nstest.New(t, "hinet")
			nstest.WireLab(t, srv, inet)
			nstest.Run(t, "", "ip", "-n", inet, "addr", "add", "203.0.113.50/24", "dev", "eth0")
			state := t.TempDir()
			sipwall := func(args ...string) string {
				t.Helper()
				cmd := exec.Command("ip", append([]string{"netns", "exec", srv, bin}, args...)...)
				cmd.Env = append(os.Environ(), "SIPWALL_STATE_DIR="+state, "SSH_CONNECTION=")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("sipwall %v: %v\n%s", args, err, stderr.String())
				}
				return stdout.String()
			}
			apply := []string{"apply", "-c", policyFile, "--backend", backend, "--confirm", "0"}
			if backend == "nftables" {
				apply = append(apply, "--without-guard") // the counters need no knock
			}
			sipwall(apply...)
			sipwall("ban", "198.51.100.7", "2001:db8:20::7")
			// A scanner's OPTIONS, SIP without the knock, a trap port.
			nstest.Run(t, inet, "bash", "-c", `for i in 1 2 3; do printf 'OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n' >/dev/udp/192.0.2.10/5060; printf 'REGISTER sip:192.0.2.10 SIP/2.0\r\n\r\n' >/dev/udp/192.0.2.10/5062; done
timeout 1 bash -c 'exec 3<>/dev/tcp/192.0.2.10/23' || true`)

			// One reading of the counters for both (packets keep
			// arriving: neighbour discovery, retransmissions).
			page := filepath.Join(t.TempDir(), "stats.html")
			jsonOut := sipwall("stats", "--json", "--html", page)
			dom, console := browse(t, browser, page, "--dump-dom")
			if console != "" {
				t.Errorf("console messages:\n%s", console)
			}
			if n := compareDOM(t, dom, []byte(jsonOut)); n < 20 {
				t.Errorf("only %d numbers compared", n)
			}
			var st struct {
				Lists  map[string]int `json:"lists"`
				Groups []struct {
					Packets uint64 `json:"packets"`
				} `json:"groups"`
			}
			if err := json.Unmarshal([]byte(jsonOut), &st); err != nil {
				t.Fatal(err)
			}
			var packets uint64
			for _, g := range st.Groups {
				packets += g.Packets
			}
			if st.Lists["banned"] < 2 || packets == 0 {
				t.Errorf("the counters saw nothing: %s", jsonOut)
			}
			if backend == "iptables" {
				dir := filepath.Join(os.TempDir(), "sipwall-screenshots")
				os.MkdirAll(dir, 0o755)
				shot := filepath.Join(dir, "stats.png")
				os.Remove(shot)
				browse(t, browser, page, "--screenshot="+shot, "--window-size=1280,1400")
				checkScreenshot(t, shot, 1280, 1400)
				t.Logf("screenshot: %s", shot)
			}
		})
	}
}
