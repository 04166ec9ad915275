package status

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, ok, why := Check(dir, now); ok || !strings.Contains(why, "never run") {
		t.Errorf("no file: running %v, %q", ok, why)
	}
	s := Status{PID: os.Getpid(), Backend: "nftables", Started: now, Updated: now}
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	if got, ok, why := Check(dir, now.Add(Every)); !ok || got.Backend != "nftables" {
		t.Errorf("fresh file of a live process: running %v, %q", ok, why)
	}
	if _, ok, why := Check(dir, now.Add(4*Every)); ok || !strings.Contains(why, "has not said it is alive") {
		t.Errorf("stale file: running %v, %q", ok, why)
	}
	// A process that exited.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	s.PID = cmd.Process.Pid
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	if _, ok, why := Check(dir, now); ok || !strings.Contains(why, "is gone") {
		t.Errorf("dead process: running %v, %q", ok, why)
	}
	Remove(dir, os.Getpid()) // not ours: kept
	if _, err := Read(dir); err != nil {
		t.Errorf("Remove deleted another process's status: %v", err)
	}
	Remove(dir, s.PID)
	if _, err := Read(dir); !os.IsNotExist(err) {
		t.Errorf("Remove kept our status: %v", err)
	}
}
