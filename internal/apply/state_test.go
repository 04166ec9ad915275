package apply

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
// (unshare) where dir is a 64 KiB tmpfs, and reports whether this process
// is that run. The tmpfs is never visible outside that process.
func inTinyTmpfs(t *testing.T) (dir string, child bool) {
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

// fill writes to dir until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			return
		}
	}
}

func gen(applied string) *State {
	at, _ := time.Parse(time.RFC3339, applied)
	return &State{Current: &Generation{Backend: "nftables", AppliedAt: at, Files: map[string]string{"ruleset.nft": "table inet sipwall {}\n" + strings.Repeat("# padding\n", 300)}}}
}

// Saving on a full disk fails and leaves state.json and its previous
// generation exactly as they were.
func TestSaveOnFullDiskKeepsBothGenerations(t *testing.T) {
	dir, child := inTinyTmpfs(t)
	if !child {
		return
	}
	if err := gen("2024-01-01T00:00:00Z").Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := gen("2024-02-01T00:00:00Z").Save(dir); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(statePath(dir))
	prev, _ := os.ReadFile(PreviousState(dir))
	fill(t, dir)
	err := gen("2024-03-01T00:00:00Z").Save(dir)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("save on a full disk: %v", err)
	}
	if now, _ := os.ReadFile(statePath(dir)); string(now) != string(cur) {
		t.Errorf("state.json changed by a failed save")
	}
	if now, _ := os.ReadFile(PreviousState(dir)); string(now) != string(prev) {
		t.Errorf("state.json.1 changed by a failed save")
	}
	st, err := LoadState(dir)
	if err != nil || !st.Current.AppliedAt.Equal(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("after the failed save: %+v %v", st, err)
	}
	// Space again: the next save works and keeps the last generation.
	os.Remove(filepath.Join(dir, "filler"))
	if err := gen("2024-03-01T00:00:00Z").Save(dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(PreviousState(dir)); string(b) != string(cur) {
		t.Errorf("the replaced state is not the previous generation")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestDamagedStateSaysHowToRecover(t *testing.T) {
	dir := t.TempDir()
	a, b := gen("2024-01-01T00:00:00Z"), gen("2024-02-01T00:00:00Z")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(dir); err != nil {
		t.Fatal(err)
	}
	if st, err := LoadState(dir); err != nil || !st.Current.AppliedAt.Equal(b.Current.AppliedAt) || st.Checksum == "" {
		t.Fatalf("intact: %+v %v", st, err)
	}
	data, _ := os.ReadFile(statePath(dir))
	for name, damaged := range map[string]string{
		"truncated": string(data[:len(data)/2]),
		"edited":    strings.Replace(string(data), "nftables", "iptables", 1),
	} {
		os.WriteFile(statePath(dir), []byte(damaged), 0o600)
		_, err := LoadState(dir)
		if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "mv "+PreviousState(dir)+" "+statePath(dir)) || !strings.Contains(err.Error(), "2024-01-01T00:00:00Z") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The way out it names works.
	if err := os.Rename(PreviousState(dir), statePath(dir)); err != nil {
		t.Fatal(err)
	}
	if st, err := LoadState(dir); err != nil || !st.Current.AppliedAt.Equal(a.Current.AppliedAt) {
		t.Errorf("after mv: %+v %v", st, err)
	}
	// Without an intact previous generation: start afresh.
	os.WriteFile(statePath(dir), data[:10], 0o600)
	_, err := LoadState(dir)
	if err == nil || !strings.Contains(err.Error(), "no intact previous generation") || !strings.Contains(err.Error(), "remove "+statePath(dir)) {
		t.Errorf("both damaged: %v", err)
	}
	os.Remove(statePath(dir))
	if st, err := LoadState(dir); err != nil || st.Current != nil {
		t.Errorf("afresh: %+v %v", st, err)
	}
}

func TestStateWithoutChecksumStillReads(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(statePath(dir), []byte(`{"version": 1, "current": {"backend": "iptables"}}`), 0o600)
	if st, err := LoadState(dir); err != nil || st.Current.Backend != "iptables" {
		t.Errorf("%+v %v", st, err)
	}
}

func TestOwnFilesAreNotFollowedThroughLinks(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte(`{"version": 1, "current": {"backend": "TOP-SECRET"}}`), 0o600)
	if err := os.Symlink(secret, filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir, time.Second); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("lock through a link: %v", err)
	}
	os.Remove(filepath.Join(dir, "lock"))
	os.Symlink(secret, statePath(dir))
	_, err := LoadState(dir)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || strings.Contains(err.Error(), "TOP-SECRET") {
		t.Errorf("state through a link: %v", err)
	}
	if b, _ := os.ReadFile(secret); !strings.Contains(string(b), "TOP-SECRET") {
		t.Errorf("the link's target was changed")
	}
}
