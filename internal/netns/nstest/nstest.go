// Package nstest holds helpers for tests that run against the real kernel in
// fresh network namespaces.
package nstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"

	"github.com/sipwall/sipwall/internal/netns"
)

// RequireRoot skips a test that needs root and the kernel's netfilter, or
// fails it when SIPWALL_REQUIRE_ROOT=1 (as in CI, where a skipped root test
// would hide a regression). It also checks that the listed tools exist.
func RequireRoot(t testing.TB, tools ...string) {
	t.Helper()
	strict := os.Getenv("SIPWALL_REQUIRE_ROOT") == "1"
	fail := t.Skipf
	if strict {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("needs root (network namespaces, netfilter)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			fail("needs %s (see .ci/run for the packages)", tool)
		}
	}
}

var seq atomic.Int32

// New creates a fresh namespace removed when the test ends and returns its name.
func New(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("sw-%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	if err := netns.Add(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Del(name) })
	return name
}

// Run runs argv in ns and fails the test on error.
func Run(t testing.TB, ns string, argv ...string) string {
	t.Helper()
	out, err := netns.Run(context.Background(), ns, nil, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
