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
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	return fmt.Sprint(v), nil
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
	var report any
	if err := json.Unmarshal(jsonOut, &report); err != nil {
		t.Fatal(err)
	}
	fields := dataJSON.FindAllStringSubmatch(dom, -1)
	seen := map[string]bool{}
	for _, m := range fields {
		want, err := lookup(report, m[1])
		if err != nil {
			t.Errorf("data-json=%q: %v", m[1], err)
			continue
		}
		if got := strings.TrimSpace(m[2]); got != want {
			t.Errorf("%s: the page shows %q, --json has %q", m[1], got, want)
		}
		seen[strings.SplitN(m[1], ".", 2)[0]] = true
	}
	if len(fields) < 40 || !seen["totals"] || !seen["sources"] || !seen["rules"] || !seen["dropped"] {
		t.Errorf("only %d numbers compared (%v)", len(fields), seen)
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
	// Green and red bars, dark text: a rendered report, not a blank page.
	var green, red, dark int
	for y := 0; y < h; y += 2 {
		for x := 0; x < w; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			switch {
			case g > 130 && r < 90 && b < 120:
				green++
			case r > 170 && g < 90 && b < 80:
				red++
			case r < 60 && g < 60 && b < 70:
				dark++
			}
		}
	}
	if green < 50 || red < 200 || dark < 500 {
		t.Errorf("the screenshot looks empty: %d green, %d red, %d dark pixels (of every 4th)", green, red, dark)
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
