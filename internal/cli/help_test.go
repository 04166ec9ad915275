package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, out, errs := run(t, args...)
		if code != 0 || errs != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
		}
		if !strings.HasPrefix(out, "sipwall ") || !strings.Contains(out, "built with "+runtime.Version()+" for linux/") {
			t.Errorf("%v: %q", args, out)
		}
	}

	// The stamps scripts/package sets with -X win over the build info.
	version, commit, commitTime = "1.2.3", "0123456789abcdef", "2026-11-30T12:00:00Z"
	t.Cleanup(func() { version, commit, commitTime = "", "", "" })
	code, out, _ := run(t, "version")
	want := "sipwall 1.2.3\ncommit 0123456789abcdef 2026-11-30T12:00:00Z\nbuilt with " + runtime.Version() + " for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if code != 0 || out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	code, out, _ = run(t, "version", "--json")
	var v buildVersion
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version != "1.2.3" || v.Commit != "0123456789abcdef" || v.GoVersion != runtime.Version() {
		t.Errorf("--json: exit %d, %q", code, out)
	}
	if v.releaseDate() != "2026-11-30" {
		t.Errorf("release date %q", v.releaseDate())
	}
	if code, _, errs := run(t, "version", "extra"); code != exitUsage || !strings.Contains(errs, `"extra"`) {
		t.Errorf("version extra: exit %d, %q", code, errs)
	}
}

func TestHelpCommand(t *testing.T) {
	code, out, errs := run(t, "help", "ban")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	// The command's own usage, not the general one.
	if !strings.HasPrefix(out, "usage: sipwall ban [--for DURATION]") || strings.Contains(out, "commands:") {
		t.Errorf("help ban printed:\n%s", out)
	}
	for _, want := range []string{"--for DURATION", "--reason TEXT", "--from-file FILE", "--state-dir DIR"} {
		if !strings.Contains(out, want) {
			t.Errorf("help ban lacks %q:\n%s", want, out)
		}
	}
	// The same text as ban -h, which goes to stderr.
	_, _, banH := run(t, "ban", "-h")
	if banH != out {
		t.Errorf("ban -h differs from help ban:\n%s\n---\n%s", banH, out)
	}

	code, out, _ = run(t, "help")
	if code != 0 || !strings.Contains(out, "commands:") || !strings.Contains(out, "completion") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	code, _, errs = run(t, "help", "bann")
	if code != exitUsage || !strings.Contains(errs, `unknown command "bann"`) {
		t.Errorf("help bann: exit %d, %q", code, errs)
	}
}

func TestHelpHidesInternalFlags(t *testing.T) {
	_, _, out := run(t, "rollback", "-h")
	if strings.Contains(out, "watchdog") || strings.Contains(out, "deadline") || !strings.Contains(out, "--state-dir DIR") {
		t.Errorf("rollback -h:\n%s", out)
	}
	// A quotation in back quotes is not the value's name.
	_, _, out = run(t, "apply", "-h")
	if strings.Contains(out, "-confirm sipwall confirm") || !strings.Contains(out, "--confirm DURATION\n") || !strings.Contains(out, "unless 'sipwall confirm' runs") {
		t.Errorf("apply -h:\n%s", out)
	}
	if !strings.Contains(out, "--backend auto|iptables|nftables\n") || !strings.Contains(out, "(default /etc/sipwall/sipwall.yaml)") {
		t.Errorf("apply -h:\n%s", out)
	}
}

// Every command answers -h with its usage, exit 0 and nothing else: help,
// the manual pages and the completions rely on it.
func TestEveryCommandDescribesItself(t *testing.T) {
	for _, name := range commandNames() {
		code, out, errs := run(t, name, "-h")
		if code != 0 || out != "" || !strings.HasPrefix(errs, "usage: sipwall "+name) {
			t.Errorf("%s -h: exit %d, stdout %q, stderr %q", name, code, out, errs)
		}
		if d := describe(name); d.summary == "" {
			t.Errorf("%s has no summary", name)
		}
	}
}

func TestManPages(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := run(t, "man", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	names := commandNames()
	if n := strings.Count(out, "\n"); n != len(names)+1 {
		t.Errorf("%d pages written, want %d", n, len(names)+1)
	}
	for _, name := range append([]string{""}, names...) {
		file := "sipwall.8"
		if name != "" {
			file = "sipwall-" + name + ".8"
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), ".TH SIPWALL") || !strings.Contains(string(b), ".SH NAME") {
			t.Errorf("%s is not a manual page:\n%s", file, b)
		}
	}
	ban, _ := os.ReadFile(filepath.Join(dir, "sipwall-ban.8"))
	for _, want := range []string{".B \\-\\-for \\fIDURATION\\fR\nhow long the ban lasts", "sipwall\\-ban \\- ban addresses"} {
		if !strings.Contains(string(ban), want) {
			t.Errorf("sipwall-ban.8 lacks %q:\n%s", want, ban)
		}
	}
	rb, _ := os.ReadFile(filepath.Join(dir, "sipwall-rollback.8"))
	if strings.Contains(string(rb), "watchdog") {
		t.Errorf("sipwall-rollback.8 shows an internal flag:\n%s", rb)
	}

	// man(1) renders every page without a warning, as lintian checks.
	if _, err := exec.LookPath("man"); err != nil {
		t.Log("man is not installed: pages not rendered")
		return
	}
	for _, name := range names {
		p := filepath.Join(dir, "sipwall-"+name+".8")
		cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", p)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANWIDTH=80")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man %s: %v %s", p, err, stderr.String())
		}
	}
	cmd := exec.Command("man", "-l", filepath.Join(dir, "sipwall-apply.8"))
	cmd.Env = append(os.Environ(), "MANWIDTH=100")
	raw, err := cmd.Output()
	text := regexp.MustCompile(".\x08").ReplaceAll(raw, nil) // overstrike bold and underline
	if err != nil || !strings.Contains(string(text), "--confirm DURATION") || !strings.Contains(string(text), "sipwall apply [-c FILE]") {
		t.Errorf("man sipwall-apply: %v\n%s", err, text)
	}

	if code, _, errs := run(t, "man"); code != exitUsage || !strings.Contains(errs, "--dir") {
		t.Errorf("man without --dir: exit %d, %q", code, errs)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range shells {
		code, out, errs := run(t, "completion", sh)
		if code != 0 || errs != "" || !strings.Contains(out, "replay") {
			t.Fatalf("completion %s: exit %d, stderr %q", sh, code, errs)
		}
		if strings.Contains(out, "watchdog") {
			t.Errorf("completion %s offers an internal flag", sh)
		}
		path, err := exec.LookPath(sh)
		if err != nil {
			if os.Getenv("SIPWALL_REQUIRE_ROOT") == "1" {
				t.Errorf("%s is not installed: its script cannot be parsed (scripts/test installs it)", sh)
			} else {
				t.Logf("%s is not installed: its script is not parsed", sh)
			}
			continue
		}
		f := filepath.Join(t.TempDir(), "sipwall."+sh)
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(path, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, b)
		}
	}
	if code, _, errs := run(t, "completion", "tcsh"); code != exitUsage || !strings.Contains(errs, `"tcsh"`) {
		t.Errorf("completion tcsh: exit %d, %q", code, errs)
	}
}

// The bash script completes for real: commands, a command's flags, a
// flag's values, help's command names.
func TestBashCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is not installed")
	}
	_, script, _ := run(t, "completion", "bash")
	f := filepath.Join(t.TempDir(), "sipwall.bash")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(line string) string {
		t.Helper()
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := "source " + f + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_sipwall\necho \"${COMPREPLY[*]}\"\n"
		b, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", line, err, b)
		}
		return strings.TrimSpace(string(b))
	}
	for line, want := range map[string]string{
		"sipwall re":                        "remove replay restore",
		"sipwall apply --b":                 "--backend",
		"sipwall apply --backend ":          "auto iptables nftables",
		"sipwall compile --backend nf":      "nftables",
		"sipwall help ba":                   "ban",
		"sipwall completion ":               "bash zsh fish",
		"sipwall rollback --":               "--state-dir",
		"sipwall --ver":                     "--version",
		"sipwall replay --local 192.0.2.1 ": "",
	} {
		if got := complete(line); got != want {
			t.Errorf("%q completes to %q, want %q", line, got, want)
		}
	}
}

// replay --html into a directory that does not exist: a clear error, exit
// 1, no file left behind; into a good path: a page, and stdout unchanged.
func TestReplayHTMLFile(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "")
	captures, _ := filepath.Glob("../../../shared/corpus/pcap/svmap.pcap")
	if len(captures) == 0 {
		t.Fatal("no corpus capture svmap.pcap")
	}
	args := []string{"replay", "-c", lab, "--local", "192.0.2.10,2001:db8:10::10"}
	bad := filepath.Join(t.TempDir(), "missing", "r.html")
	code, _, errs := run(t, append(append(args, "--html", bad), captures...)...)
	if code != exitFailure || !strings.Contains(errs, "--html") || !strings.Contains(errs, "missing") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "r.html")
	_, plain, _ := run(t, append(args, captures...)...)
	code, out, errs := run(t, append(append(args, "--html", good), captures...)...)
	if code != 0 || out != plain {
		t.Errorf("exit %d, stderr %q; stdout differs from a replay without --html", code, errs)
	}
	b, err := os.ReadFile(good)
	if err != nil || !strings.HasPrefix(string(b), "<!DOCTYPE html>") || !strings.Contains(string(b), "svmap.pcap") {
		t.Errorf("the page: %v\n%.200s", err, b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left in the directory: %v", ents)
	}
}
