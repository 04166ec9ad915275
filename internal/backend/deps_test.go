package backend_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pure are the packages of sipwall's core: they do no I/O on the firewall,
// so that the engine, replay and the tests can run them anywhere.
var pure = []string{
	"policy", "ir", "compile", "render", "render/iptables", "render/nft",
	"packet", "sip", "engine", "replay", "backend", "guard/inspect",
}

// forbidden says why an import is refused in the core ("" when allowed).
func forbidden(pkg string) string {
	switch {
	case pkg == "os/exec":
		return "runs programs"
	case strings.HasPrefix(pkg, "github.com/google/nftables"),
		strings.HasPrefix(pkg, "github.com/mdlayher/netlink"),
		strings.HasPrefix(pkg, "github.com/ti-mo/"):
		return "talks netlink"
	case strings.HasPrefix(pkg, "github.com/sipwall/sipwall/internal/backend/"):
		return "is a backend implementation"
	case pkg == "github.com/sipwall/sipwall/internal/netns":
		return "enters network namespaces"
	}
	return ""
}

// goCmd is the go command of the toolchain running the test.
func goCmd() string { return filepath.Join(runtime.GOROOT(), "bin", "go") }

// TestPureCore fails when a core package imports, directly or not, a
// package that runs tools, talks netlink or is a backend implementation.
func TestPureCore(t *testing.T) {
	for _, p := range pure {
		path := "github.com/sipwall/sipwall/internal/" + p
		out, err := exec.Command(goCmd(), "list", "-deps", path).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", path, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		n := 0
		for sc.Scan() {
			n++
			if why := forbidden(sc.Text()); why != "" {
				t.Errorf("%s imports %s, which %s: the core must stay pure", p, sc.Text(), why)
			}
		}
		if n < 2 {
			t.Errorf("go list -deps %s listed %d packages", path, n)
		}
	}
}

// TestForbiddenSeen makes sure the check can fail: a backend
// implementation's own dependencies are forbidden ones.
func TestForbiddenSeen(t *testing.T) {
	out, err := exec.Command(goCmd(), "list", "-deps", "github.com/sipwall/sipwall/internal/backend/nftables").Output()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, l := range strings.Fields(string(out)) {
		if forbidden(l) != "" {
			found++
		}
	}
	if found < 3 {
		t.Errorf("the nftables backend shows %d forbidden imports, want os/exec, nftables and netlink at least", found)
	}
}
