package boottest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

const repo = "../.."

// requireRoot skips the test outside CI without root or a tool, and fails it
// in CI (SIPWALL_REQUIRE_ROOT=1), where every tool is installed.
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("SIPWALL_REQUIRE_ROOT") == "1" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("needs root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			fail("needs %s (scripts/test installs it)", tool)
		}
	}
}

var (
	debOnce sync.Once
	debPath string
	debErr  error
	debDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if debDir != "" {
		os.RemoveAll(debDir)
	}
	os.Exit(code)
}

// buildPackage runs scripts/package in dir and returns the .deb's path (its
// last line of output).
func buildPackage(src, out string) (string, error) {
	cmd := exec.Command(filepath.Join(src, "scripts/package"), out)
	cmd.Dir = src
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", &buildError{err, stderr.String()}
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

type buildError struct {
	err    error
	stderr string
}

func (e *buildError) Error() string { return "scripts/package: " + e.err.Error() + "\n" + e.stderr }

// theDeb builds the package from this checkout once per test run.
func theDeb(t *testing.T) string {
	t.Helper()
	debOnce.Do(func() {
		debDir, debErr = os.MkdirTemp("", "sipwall-deb-")
		if debErr != nil {
			return
		}
		src, err := filepath.Abs(repo)
		if err != nil {
			debErr = err
			return
		}
		debPath, debErr = buildPackage(src, debDir)
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debPath
}

// A second build, from a fresh clone at another path and another checkout
// time, gives the same bytes; lintian finds nothing; the package holds what
// Debian's layout asks for and no /etc/sipwall/sipwall.yaml.
func TestPackage(t *testing.T) {
	requireRoot(t, "git", "dpkg-deb", "lintian")
	deb := theDeb(t)
	if !regexp.MustCompile(`/sipwall_[0-9][0-9a-z.~+]*-1_` + runtime.GOARCH + `\.deb$`).MatchString(deb) {
		t.Errorf("package path %q", deb)
	}

	// Reproducible: clone what was built (HEAD; a dirty work tree is
	// compared by its committed part only when it has no changes).
	dirty, _ := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output()
	if len(dirty) == 0 {
		clone := filepath.Join(t.TempDir(), "elsewhere", "sipwall")
		if b, err := exec.Command("git", "clone", "-q", "--no-hardlinks", repo, clone).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, b)
		}
		again, err := buildPackage(clone, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(deb)
		b, _ := os.ReadFile(again)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("two builds of one commit differ: %s (%d bytes) and %s (%d bytes)", deb, len(a), again, len(b))
		}
	} else {
		t.Logf("work tree has uncommitted changes: the second build from a clone is not compared\n%s", dirty)
	}

	out, err := exec.Command("lintian", "--fail-on", "error,warning,info,pedantic", "-I", "--pedantic", deb).CombinedOutput()
	tags := regexp.MustCompile(`(?m)^[EWIPX]: .*$`).FindAllString(string(out), -1)
	if err != nil || len(tags) > 0 {
		t.Errorf("lintian: %v\n%s", err, out)
	}

	list, err := exec.Command("dpkg-deb", "--contents", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Fields(l)
		if f[1] != "root/root" {
			t.Errorf("not owned by root: %s", l)
		}
		files[strings.TrimPrefix(f[len(f)-1], ".")] = f[0]
	}
	for _, want := range []string{
		"/usr/sbin/sipwall",
		"/lib/systemd/system/sipwall-restore.service", "/lib/systemd/system/sipwall-guard.service",
		"/lib/systemd/system/sipwall-save.service", "/lib/systemd/system/sipwall-save.timer",
		"/usr/share/man/man8/sipwall.8.gz", "/usr/share/man/man8/sipwall-apply.8.gz", "/usr/share/man/man8/sipwall-ban.8.gz",
		"/usr/share/bash-completion/completions/sipwall", "/usr/share/zsh/vendor-completions/_sipwall",
		"/usr/share/fish/vendor_completions.d/sipwall.fish",
		"/usr/share/doc/sipwall/README.md", "/usr/share/doc/sipwall/guard.md", "/usr/share/doc/sipwall/copyright",
		"/usr/share/doc/sipwall/changelog.Debian.gz", "/usr/share/sipwall/examples/pbx.yaml",
	} {
		if _, ok := files[want]; !ok {
			t.Errorf("the package lacks %s", want)
		}
	}
	if files["/usr/sbin/sipwall"] != "-rwxr-xr-x" {
		t.Errorf("/usr/sbin/sipwall is %s", files["/usr/sbin/sipwall"])
	}
	for f := range files {
		if strings.HasPrefix(f, "/etc/") {
			t.Errorf("the package writes %s: the administrator's sipwall init does", f)
		}
	}

	// The binary is static and stamped; the units start it where it is.
	x := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
	}
	if b, _ := exec.Command("file", filepath.Join(x, "usr/sbin/sipwall")).Output(); len(b) > 0 && !strings.Contains(string(b), "statically linked") {
		t.Errorf("not static: %s", b)
	}
	v, err := exec.Command(filepath.Join(x, "usr/sbin/sipwall"), "version").Output()
	head, _ := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil || !strings.Contains(string(v), "commit "+strings.TrimSpace(string(head))) || !strings.Contains(filepath.Base(deb), strings.Fields(string(v))[1]) {
		t.Errorf("sipwall version in the package: %v\n%s", err, v)
	}
	unit, _ := os.ReadFile(filepath.Join(x, "lib/systemd/system/sipwall-restore.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/sbin/sipwall restore --boot") || strings.Contains(string(unit), "/usr/local") {
		t.Errorf("sipwall-restore.service:\n%s", unit)
	}
}
