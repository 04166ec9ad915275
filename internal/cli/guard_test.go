package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/netns/nstest"
)

func TestGuardLiveBadInput(t *testing.T) {
	state := t.TempDir()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"guard", "-c", lab, "--state-dir", state, "--log", "/dev/null"}, exitFailure, "nothing applied"},
		{[]string{"guard", "-c", lab, "--state-dir", state, "/var/log/asterisk/security"}, exitUsage, "--log FILE"},
		{[]string{"guard", "-c", lab, "--state-dir", state, "--backend", "nftables", "--ami", "127.0.0.1:5038"}, exitUsage, "--ami-user"},
		{[]string{"guard", "-c", lab, "--state-dir", state, "--backend", "pf", "--log", "/dev/null"}, exitUsage, "unknown backend"},
		{[]string{"guard", "-c", lab, "--state-dir", state, "--backend", "iptables"}, exitUsage, "nothing to watch"},
		{[]string{"guard", "--maxretry", "0", "--log", "/dev/null"}, exitUsage, "--maxretry"},
	}
	for _, c := range cases {
		code, _, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args[1:], code, stderr, c.code, c.msg)
		}
	}
}

// TestGuardLiveStartsAndStops runs live mode on the iptables backend (which
// needs no nflog socket) with a log file, until it is stopped.
func TestGuardLiveStartsAndStops(t *testing.T) {
	// Guard runs as its own process in a throw-away namespace, never in
	// the host's (its goroutines would not follow a namespace switch).
	nstest.RequireRoot(t, "ipset")
	ns := nstest.New(t, "guard")
	bin := buildSipwall(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	policy, _ := filepath.Abs(lab)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, bin, "guard", "-c", policy, "--state-dir", dir, "--backend", "iptables",
		"--log", filepath.Join(dir, "security"), "--metrics", "127.0.0.1:0")
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "guard to start", func() bool { return strings.Contains(errb.String(), "sipwall guard starting") })
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("guard: %v\n%s", err, errb.String())
	}
	for _, s := range []string{"sipwall guard starting", "backend=iptables", "inspector=false", "metrics", "sipwall guard stopped"} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, errb.String())
		}
	}
}
