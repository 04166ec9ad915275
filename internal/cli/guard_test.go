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
		{[]string{"guard", "-c", lab, "--state-dir", state, "--backend", "nftables", "--ami", "127.0.0.1:5038"}, exitUsage, "an AMI address (--ami) needs a user"},
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
	if err := os.WriteFile(filepath.Join(dir, "security"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	// A second log that does not exist: a warning, the first keeps running.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, bin, "guard", "-c", policy, "--state-dir", dir, "--backend", "iptables",
		"--log", filepath.Join(dir, "security"), "--log", filepath.Join(dir, "messages"), "--metrics", "127.0.0.1:0")
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
	for _, s := range []string{"sipwall guard starting", "backend=iptables", "inspector=false", "metrics", "sipwall guard stopped",
		"level=WARN msg=\"configured log is not usable\" input=\"log " + filepath.Join(dir, "messages") + "\" problem=\"does not exist (followed once it appears)\""} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, errb.String())
		}
	}
	// The warning is recorded for `sipwall status`.
	code, out, stderr := run(t, "status", "--state-dir", dir)
	if !strings.Contains(out, "guard:    stopped") || !strings.Contains(out, "log "+filepath.Join(dir, "messages")+" does not exist") {
		t.Errorf("status: exit %d\n%s%s", code, out, stderr)
	}
}

// TestGuardNoUsableSource: when every configured log is missing or
// unreadable and nothing else is watched, guard refuses to run, naming
// the logs, and records why for `sipwall status`.
func TestGuardNoUsableSource(t *testing.T) {
	state := t.TempDir()
	dir := t.TempDir()
	missing := filepath.Join(dir, "security")
	code, _, stderr := run(t, "guard", "-c", lab, "--state-dir", state, "--backend", "iptables", "--log", missing, "--log", dir, "--metrics", "off")
	for _, want := range []string{"no usable source", "log " + missing + " does not exist", "log " + dir + " is a directory, not a log file (not followed)", "guard.logs"} {
		if code != exitFailure || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitFailure, want)
		}
	}
	code, out, _ := run(t, "status", "--state-dir", state)
	if !strings.Contains(out, "guard:    stopped") || !strings.Contains(out, missing+" does not exist") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
}
