package lists

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inTinyTmpfs runs the calling test again in a private mount namespace
// where dir is a 64 KiB tmpfs, and reports whether this process is that
// run.
func inTinyTmpfs(t *testing.T) (string, bool) {
	t.Helper()
	if d := os.Getenv("SIPWALL_TINY_TMPFS"); d != "" {
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=64k"); err != nil {
			t.Fatalf("mount tmpfs: %v", err)
		}
		return d, true
	}
	if os.Geteuid() != 0 {
		if os.Getenv("SIPWALL_REQUIRE_ROOT") != "" {
			t.Fatal("needs root (mount namespace)")
		}
		t.Skip("needs root (mount namespace)")
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "SIPWALL_TINY_TMPFS="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a mount namespace: %v\n%s", err, out)
	}
	return "", false
}

func listsData(t *testing.T, addrs ...string) []byte {
	t.Helper()
	sf := &savedFile{SavedAt: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Backend: "iptables"}
	for _, a := range addrs {
		sf.Entries = append(sf.Entries, savedEntry{List: "banned", Addr: a, Comment: strings.Repeat("x", 200)})
	}
	b, err := encodeFile(sf)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// save on a full disk: lists.json and lists.json.1 stay as they were (the
// old file is never moved before the new one is on disk).
func TestSaveOnFullDiskKeepsLists(t *testing.T) {
	dir, child := inTinyTmpfs(t)
	if !child {
		return
	}
	path := DefaultFile(dir)
	first, second := listsData(t, "192.0.2.1"), listsData(t, "192.0.2.1", "192.0.2.2")
	if _, err := saveFile(path, first, 1); err != nil {
		t.Fatal(err)
	}
	if res, err := saveFile(path, second, 2); err != nil || !res.Rotated {
		t.Fatalf("second save: %+v %v", res, err)
	}
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	_, err = saveFile(path, listsData(t, "192.0.2.1", "192.0.2.2", "192.0.2.3"), 3)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "unchanged") {
		t.Fatalf("save on a full disk: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(second) {
		t.Errorf("lists.json changed by a failed save")
	}
	if b, _ := os.ReadFile(Previous(path)); string(b) != string(first) {
		t.Errorf("lists.json.1 changed by a failed save")
	}
	if sf, from, fell, err := loadGenerations(path); err != nil || from != path || fell != "" || len(sf.Entries) != 2 {
		t.Errorf("restore after the failed save: %v %s %q %v", sf, from, fell, err)
	}
}

// restore never shows another file's content: a lists.json that is a link
// is refused without reading it, and a file that is not a lists file is
// named, not quoted.
func TestRestoreDoesNotEchoOtherFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "shadow")
	os.WriteFile(secret, []byte("root:$6$TOPSECRETHASH:19000:0:99999:7:::\n"), 0o600)
	path := DefaultFile(dir)
	os.Symlink(secret, path)
	_, _, _, err := loadGenerations(path)
	if err == nil || strings.Contains(err.Error(), "TOPSECRET") || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked lists.json: %v", err)
	}
	os.Remove(path)
	b, _ := os.ReadFile(secret)
	os.WriteFile(path, b, 0o600)
	os.WriteFile(Previous(path), b, 0o600)
	_, _, _, err = loadGenerations(path)
	if err == nil || strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), "root:") || !strings.Contains(err.Error(), "not a sipwall lists file") {
		t.Errorf("foreign lists.json: %v", err)
	}
}
