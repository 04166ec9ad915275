package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"guard", "-c", lab, "--state-dir", dir, "--backend", "iptables",
		"--log", filepath.Join(dir, "security"), "--metrics", "127.0.0.1:0"}, strings.NewReader(""), &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, s := range []string{"sipwall guard starting", "backend=iptables", "inspector=false", "metrics", "sipwall guard stopped"} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, errb.String())
		}
	}
}
