package lists_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/lists"
)

// logNFT puts an nft in front of the real one on PATH that appends its
// arguments to a log, and returns a function that reads the log.
func logNFT(t *testing.T) func() string {
	t.Helper()
	real, err := exec.LookPath("nft")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := "#!/bin/sh\necho \"$*\" >>" + log + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return func() string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		return string(b)
	}
}

// TestNFTWrites bans and allows over netlink and checks the results: the
// replacement of an entry's timeout and comment, an address inside a
// listed network, a network over listed addresses, intervals at the top of
// the address space. A change runs no nft at all: it neither reads the set
// nor checks overlaps by reading.
func TestNFTWrites(t *testing.T) {
	for _, path := range []string{"netlink"} {
		t.Run(path, func(t *testing.T) {
			l := newLab(t, "nftables", false)
			nftLog := logNFT(t)
			s := l.store
			ctx := context.Background()
			// Every change is checked: no nft runs, neither to write nor
			// to read the set.
			add := func(list string, d time.Duration, comment string, addrs ...string) *lists.Result {
				t.Helper()
				nftLog()
				res, err := s.Add(ctx, list, items(t, d, comment, addrs...))
				if err != nil {
					t.Fatal(err)
				}
				got := nftLog()
				if got != "" {
					t.Errorf("adding %v ran nft: %s", addrs, got)
				}
				return res
			}
			entry := func(list, addr string) (lists.Entry, bool) {
				t.Helper()
				es, err := s.List(ctx, list)
				if err != nil {
					t.Fatal(err)
				}
				return find(es, list, addr)
			}

			add("banned", time.Hour, "first", "203.0.113.5", "2001:db8:bad::/48")
			if e, ok := entry("banned", "203.0.113.5"); !ok || e.Comment != "first" || e.Remaining < 59*time.Minute {
				t.Errorf("203.0.113.5 banned as %+v, want 1h and comment first", e)
			}
			add("banned", 10*time.Minute, "second", "203.0.113.5")
			if e, _ := entry("banned", "203.0.113.5"); e.Comment != "second" || e.Remaining > 10*time.Minute {
				t.Errorf("banned again as %+v, want 10m and comment second", e)
			}
			// The same comment, a longer timeout: an add alone refreshes it.
			add("banned", 30*time.Minute, "second", "203.0.113.5")
			if e, _ := entry("banned", "203.0.113.5"); e.Comment != "second" || e.Remaining < 29*time.Minute || e.Remaining > 30*time.Minute {
				t.Errorf("banned again for 30m as %+v, want 30m and comment second", e)
			}
			// And a shorter one.
			add("banned", 5*time.Minute, "second", "203.0.113.5")
			if e, _ := entry("banned", "203.0.113.5"); e.Comment != "second" || e.Remaining < 4*time.Minute || e.Remaining > 5*time.Minute {
				t.Errorf("banned again for 5m as %+v, want 5m and comment second", e)
			}
			if e, ok := entry("banned", "2001:db8:bad::/48"); !ok || e.Comment != "first" {
				t.Errorf("the /48 is listed as %+v", e)
			}
			if !l.inKernel(t, "nftables", "banned", "2001:db8:bad:ffff::1") || l.inKernel(t, "nftables", "banned", "2001:db8:bae::") {
				t.Error("the banned /48 does not match exactly its addresses")
			}

			// An address inside a network already listed: left out, and said.
			add("banned", 0, "", "198.51.100.0/24")
			res := add("banned", time.Minute, "", "198.51.100.7")
			if res.Added != 0 || len(res.Warnings) != 1 || res.Warnings[0] != "198.51.100.7 is already listed inside 198.51.100.0/24 (list banned)" {
				t.Errorf("ban inside a banned network: %+v", res)
			}
			// A network over listed addresses replaces them.
			add("allowed", 0, "phone", "192.0.2.7", "192.0.2.9")
			res = add("allowed", 0, "office", "192.0.2.0/28")
			if res.Added != 1 || len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "192.0.2.0/28 replaces 192.0.2.7 (list allowed)") {
				t.Errorf("a network over allowed addresses: %+v", res)
			}
			es, _ := s.List(ctx, "allowed")
			if len(es) != 1 || es[0].Addr() != "192.0.2.0/28" || es[0].Comment != "office" {
				t.Errorf("allowed after the network: %v", es)
			}
			// Intervals that end at the top of the address space have no
			// end element.
			add("banned", 0, "top", "255.255.255.0/24", "ffff::/16")
			res = add("banned", 0, "", "255.255.255.255", "ffff:ffff::1")
			if res.Added != 0 || len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "inside 255.255.255.0/24") {
				t.Errorf("bans inside the top networks: %+v", res)
			}
			if e, ok := entry("banned", "255.255.255.0/24"); !ok || e.Comment != "top" {
				t.Errorf("the top /24 is listed as %+v", e)
			}
			// Single-address lists are plain sets.
			add("scanners", 0, "", "203.0.113.66")
			add("scanners", time.Minute, "", "203.0.113.66")
			if e, ok := entry("scanners", "203.0.113.66"); !ok || e.Remaining == 0 {
				t.Errorf("scanner listed as %+v, want a timeout", e)
			}

			r, err := s.Unban(ctx, prefixes(t, "203.0.113.5", "198.51.100.0/24", "255.255.255.0/24", "203.0.113.66"))
			if err != nil || r.Removed != 4 {
				t.Fatalf("unban: %+v %v", r, err)
			}
			for _, a := range []string{"203.0.113.5", "198.51.100.7", "255.255.255.255"} {
				if l.inKernel(t, "nftables", "banned", a) {
					t.Errorf("%s still banned after the unban", a)
				}
			}
			if l.inKernel(t, "nftables", "scanners", "203.0.113.66") {
				t.Error("203.0.113.66 still in scanners after the unban")
			}
		})
	}
}

// TestNFTOverlapInBatch: a large batch whose entries overlap what is listed
// (too many to ask the kernel about one by one) still lands in one
// transaction, with the same warnings.
func TestNFTOverlapInBatch(t *testing.T) {
	l := newLab(t, "nftables", false)
	ctx := context.Background()
	if _, err := l.store.Ban(ctx, items(t, 0, "", "10.1.0.0/16", "10.2.0.5")); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := 0; i < 40; i++ {
		addrs = append(addrs, "10.3.0."+strconv.Itoa(i+1))
	}
	addrs = append(addrs, "10.1.2.3", "10.2.0.0/24")
	res, err := l.store.Add(ctx, "banned", items(t, time.Hour, "batch", addrs...))
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 41 {
		t.Errorf("added %d, want 41 (40 addresses and the /24)", res.Added)
	}
	w := strings.Join(res.Warnings, "; ")
	// 10.2.0.5 is banned until removed: the /24 for an hour does not
	// cut its ban short, both stay.
	if !strings.Contains(w, "10.1.2.3 is already listed inside 10.1.0.0/16") || !strings.Contains(w, "10.2.0.5 stays listed for longer than 10.2.0.0/24") {
		t.Errorf("warnings: %s", w)
	}
	es, _ := l.store.List(ctx, "banned")
	if len(es) != 43 {
		t.Errorf("%d entries listed, want 43: %v", len(es), es)
	}
	if e, _ := find(es, "banned", "10.3.0.40"); e.Comment != "batch" {
		t.Errorf("10.3.0.40 listed as %+v", e)
	}
}
