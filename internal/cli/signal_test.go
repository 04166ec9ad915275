package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Busy commands stop within a second of SIGINT or SIGTERM, with exit status
// 130 and a word on stderr: check and compile of a policy that takes
// seconds to load, guard --scan-log on an endless input.
func TestBusyCommandsStopWhenTold(t *testing.T) {
	bin := sipwallBinary(t)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("ssh:\n  ports: [22]\nsip:\n  mode: open\ntrusted:\n  all:\n")
	for i := range 600000 { // seconds of work on any machine: the signal must find it busy
		fmt.Fprintf(&b, "    - 10.%d.%d.%d/32\n", i>>16, (i>>8)&255, i&255)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"check", []string{"check", "-c", big}},
		{"compile", []string{"compile", "-c", big, "--backend", "nftables", "-o", out}},
		{"scan-log", []string{"guard", "--scan-log", "/dev/zero"}},
	} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(c.name+"/"+sig.String(), func(t *testing.T) {
				cmd := exec.Command(bin, c.args...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				time.Sleep(500 * time.Millisecond)
				select {
				case err := <-done:
					t.Fatalf("finished before the signal (%v): the test needs a busier input\n%s", err, stderr.String())
				default:
				}
				sent := time.Now()
				cmd.Process.Signal(sig)
				select {
				case err := <-done:
					took := time.Since(sent)
					var exit *exec.ExitError
					if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted || !strings.Contains(stderr.String(), "interrupted") {
						t.Errorf("after %v: %v, stderr:\n%s", sig, err, stderr.String())
					}
					if took > time.Second {
						t.Errorf("took %v to stop", took)
					}
				case <-time.After(10 * time.Second):
					cmd.Process.Kill()
					t.Fatalf("still running 10 s after %v", sig)
				}
				if _, err := os.Stat(out); err == nil {
					t.Errorf("an interrupted compile wrote %s", out)
				}
			})
		}
	}
}
