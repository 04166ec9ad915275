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

// WireLab links a server namespace and an "Internet" namespace the way the
// corpus captures' lab is wired: the server has 192.0.2.10/24 and
// 2001:db8:10::10/64 on eth0, and both sides route the documentation
// ranges (203.0.113.0/24, 198.51.100.0/24, 2001:db8:20::/64) on the link.
// Client addresses are added to the Internet side by the caller.
func WireLab(t testing.TB, srv, inet string) {
	t.Helper()
	if err := netns.Veth(context.Background(), srv, "eth0", inet, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"ip", "-n", srv, "addr", "add", "192.0.2.10/24", "dev", "eth0"},
		{"ip", "-n", srv, "addr", "add", "2001:db8:10::10/64", "dev", "eth0", "nodad"},
		{"ip", "-n", srv, "route", "add", "203.0.113.0/24", "dev", "eth0"},
		{"ip", "-n", srv, "route", "add", "198.51.100.0/24", "dev", "eth0"},
		{"ip", "-n", srv, "-6", "route", "add", "2001:db8:20::/64", "dev", "eth0"},
		{"ip", "-n", inet, "route", "add", "192.0.2.0/24", "dev", "eth0"},
		{"ip", "-n", inet, "-6", "route", "add", "2001:db8:10::/64", "dev", "eth0"},
	} {
		Run(t, "", c...)
	}
}
