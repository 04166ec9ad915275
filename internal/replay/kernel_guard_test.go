package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/replay"
)

// TestKernelGuard replays the captures of guard_test.go into a namespace
// running the nftables ruleset and the real `sipwall guard` binary, and
// compares with replay.Run on the same captures, guard modelled:
//
//   - every rule's packet and byte counters (which of the later packets
//     the kernel dropped or accepted once guard had decided);
//   - the kernel's admitted4 and scanners4 sets with the report's admitted
//     and scanner-banned lists;
//   - the times: each admit and ban in the kernel (the earlier of its
//     notification by `nft monitor new elements`, stamped as read, and
//     guard's log line, written once the kernel acknowledged the element),
//     and for a ban as the kernel's element tells (its timeout less what
//     is left of it), against the report's time, which is the deciding
//     packet's plus Guard.Delay; the kernel's notification must come after
//     the deciding packet was written.
//
// (a) a scanner signature split over two TCP segments, (c) a knock only in
// a TLS ClientHello's server name, on the hostname policy; (b) an allowed
// User-Agent folded over two lines, on the user-agent policy.
//
// The packets are written as in TestKernelDifferential (the server's
// captured answers on raw sockets, except those replay suppresses), at the
// capture's pace; the report compared is replay.Run's on the capture
// re-timed with the instants the packets were written.
func TestKernelGuard(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	nstest.RequireRoot(t, "nft")
	bin := filepath.Join(t.TempDir(), "sipwall")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sipwall/sipwall/cmd/sipwall").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name, policy string
		capture      []byte
		admitted     []netip.Addr
		banned       []netip.Addr
	}{
		{"hostname", gHostnamePolicy, hostnameCapture(t), []netip.Addr{gTLSPhone}, []netip.Addr{gScanner}},
		{"user-agent", gUserAgentPolicy, userAgentCapture(t), []netip.Addr{gFoldPhone}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := kernelGuard(t, bin, c.policy, c.capture)
			// What the evasions are about: the report itself.
			for list, want := range map[string][]netip.Addr{replay.ListAdmitted: c.admitted, replay.ListScanner: c.banned} {
				got := listsOf(rep, list)
				if len(got) != len(want) {
					t.Errorf("report %s: %v, want %v", list, got, want)
				}
				for _, a := range want {
					if _, ok := got[a]; !ok {
						t.Errorf("report %s: %v, want %v", list, got, want)
					}
				}
			}
		})
	}
}

// guardTimeTolerance bounds the difference between the kernel's and the
// report's time of an admit or ban: guard's own latency on a loaded
// machine (the report assumes DefaultGuardDelay), and the millisecond
// resolution of guard's log and of nft's expiry. Guard's latency is
// milliseconds on an idle machine; a test run shares two cores with the
// lab and the boot test, so the bound is a quarter of a second: still far
// below a scanner's or a phone's next packet.
const guardTimeTolerance = 250 * time.Millisecond

var (
	guardLogLine = regexp.MustCompile(`time=(\S+) level=INFO msg=(admitted|"banned a SIP scanner") addr=(\S+)`)
	nftElem      = regexp.MustCompile(`^([0-9a-f.:]+)(?: timeout (\S+))?(?: expires (\S+))?(?: comment "(?:[^"\\]|\\.)*")?(?:, |$)`)
	nftAddElem   = regexp.MustCompile(`^add element inet sipwall (\S+) \{ ([0-9a-f.:]+)`)
)

func kernelGuard(t *testing.T, bin, policyText string, capture []byte) *replay.Report {
	p := loadPolicyText(t, policyText)
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "sipwall.yaml")
	capFile := filepath.Join(dir, "guard.pcap")
	if err := os.WriteFile(policyFile, []byte(policyText), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(capFile, capture, 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := compile.Compile(p, compile.Options{Backend: backend.NFTables})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := engine.Compile(rs, backend.NFTables)
	if err != nil {
		t.Fatal(err)
	}
	opt := replay.Options{Local: labLocal, Hostnames: p.SIP.Hostnames, Guard: replay.GuardFromPolicy(p)}

	// Which of the server's answers are written: those replay does not
	// suppress (the same decisions are checked on the re-timed capture).
	frames, link := readFrames(t, capFile)
	byNum := map[int]*kframe{}
	for _, f := range frames {
		byNum[f.num] = f
	}
	o1 := opt
	o1.Trace = func(_ string, n int, d engine.Direction, v engine.Verdict) {
		byNum[n].dir, byNum[n].verdict, byNum[n].local = d, v, true
	}
	if _, err := replay.Run(prog, []replay.Input{{Name: "guard.pcap", R: bytes.NewReader(capture)}}, o1); err != nil {
		t.Fatal(err)
	}

	l := newKernelLab(t)
	l.load(t, rs, backend.NFTables)

	// sipwall guard, as the service runs it, in the server's namespace.
	var glog syncLog
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	guard := exec.CommandContext(ctx, "ip", "netns", "exec", l.srv, bin, "guard", "-c", policyFile, "--backend", "nftables", "--state-dir", filepath.Join(dir, "state"), "--metrics", "off")
	guard.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "TZ=UTC"}
	guard.Stdout, guard.Stderr = &glog, &glog
	guard.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := guard.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- guard.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-guard.Process.Pid, syscall.SIGKILL)
		<-done
	})
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(glog.String(), `msg="guard running"`); {
		select {
		case err := <-done:
			t.Fatalf("guard exited: %v\n%s", err, glog.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("guard not running after 20 s:\n%s", glog.String())
		}
	}
	if !strings.Contains(glog.String(), "inspector=true") {
		t.Fatalf("guard runs no inspector:\n%s", glog.String())
	}

	// The kernel's notifications of new set elements, stamped as read.
	mon := exec.CommandContext(ctx, "ip", "netns", "exec", l.srv, "nft", "monitor", "new", "elements")
	monOut, err := mon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	mon.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	var monMu sync.Mutex
	notified := map[string]map[netip.Addr]time.Time{"admitted4": {}, "scanners4": {}}
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		sc := bufio.NewScanner(monOut)
		for sc.Scan() {
			at := time.Now()
			m := nftAddElem.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			monMu.Lock()
			if n := notified[m[1]]; n != nil {
				if _, ok := n[netip.MustParseAddr(m[2])]; !ok {
					n[netip.MustParseAddr(m[2])] = at
				}
			}
			monMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		syscall.Kill(-mon.Process.Pid, syscall.SIGKILL)
		<-monDone
		mon.Wait()
	})
	time.Sleep(200 * time.Millisecond) // the monitor subscribed

	// The capture, at its pace.
	start := time.Now()
	base := frames[0].ts
	for _, f := range frames {
		if !f.local || f.verdict == engine.Suppressed || f.verdict == engine.Ignored {
			continue
		}
		if d := time.Until(start.Add(f.ts.Sub(base))); d > 0 {
			time.Sleep(d)
		}
		f.at = time.Now()
		if err := l.send(f); err != nil {
			t.Fatalf("packet %d: %v", f.num, err)
		}
		f.sent = true
	}
	time.Sleep(300 * time.Millisecond) // guard's last decisions
	kRules, _ := l.kernelCounters(t, backend.NFTables)
	kSets := map[string]map[netip.Addr]span{}
	for _, set := range []string{"admitted4", "scanners4"} {
		before := time.Now()
		out := nstest.Run(t, l.srv, "nft", "list", "set", "inet", "sipwall", set)
		kSets[set] = parseSetElements(t, out, before, time.Now(), p.SIP.Scanners.BanFor.Duration)
	}
	clock := func(wall time.Time) time.Time { return base.Add(wall.Sub(start)) }
	monMu.Lock()
	for _, n := range notified {
		for a, at := range n {
			n[a] = clock(at)
		}
	}
	monMu.Unlock()
	logged := map[string]map[netip.Addr]time.Time{"admitted4": {}, "scanners4": {}}
	for _, m := range guardLogLine.FindAllStringSubmatch(glog.String(), -1) {
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("guard log time %q: %v", m[1], err)
		}
		set := "admitted4"
		if m[2] != "admitted" {
			set = "scanners4"
		}
		logged[set][netip.MustParseAddr(m[3])] = clock(at)
	}

	// The report on the capture re-timed with the instants written.
	o2 := opt
	var changed []string
	o2.Trace = func(_ string, n int, d engine.Direction, v engine.Verdict) {
		if f := byNum[n]; f.dir != d || f.verdict != v {
			changed = append(changed, fmt.Sprintf("packet %d: %v %v on the capture, %v %v re-timed", n, f.dir, f.verdict, d, v))
		}
	}
	rep, err := replay.Run(prog, []replay.Input{{Name: "guard.pcap", R: bytes.NewReader(retimed(t, frames, link, start))}}, o2)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) > 0 {
		t.Errorf("the re-timed capture was decided differently:\n%s", strings.Join(changed, "\n"))
	}

	// Counters.
	seen := map[string]int{}
	for _, r := range rep.Rules {
		seen[r.Chain]++
		ks := kRules[r.Chain]
		if r.Position > len(ks) {
			t.Fatalf("the kernel has %d rules in %s, the engine has rule %d: %s", len(ks), r.Chain, r.Position, r.Text)
		}
		if k := ks[r.Position-1]; k.Packets != r.Packets || k.Bytes != r.Bytes {
			t.Errorf("%s #%d %s: kernel %d packets %d bytes, replay %d packets %d bytes", r.Chain, r.Position, r.Text, k.Packets, k.Bytes, r.Packets, r.Bytes)
		}
	}
	for chain, ks := range kRules {
		if seen[chain] != len(ks) {
			t.Errorf("%s: the kernel has %d rules, the engine %d", chain, len(ks), seen[chain])
		}
	}

	// Sets and times.
	for set, list := range map[string]string{"admitted4": replay.ListAdmitted, "scanners4": replay.ListScanner} {
		want := listsOf(rep, list)
		got := kSets[set]
		if len(got) != len(want) {
			t.Errorf("kernel %s %v, report %s %v", set, addrsOf(got), list, addrsOf(want))
		}
		for a, at := range want {
			kAdded, ok := got[a]
			if !ok {
				t.Errorf("%s is in the report's %s list, not in the kernel's %s %v", a, list, set, addrsOf(got))
				continue
			}
			trigger := lastSentBefore(frames, a, at, clock)
			gAt, ok := logged[set][a]
			if !ok {
				t.Errorf("guard did not log its decision on %s:\n%s", a, glog.String())
				continue
			}
			monMu.Lock()
			nAt, ok := notified[set][a]
			monMu.Unlock()
			if !ok {
				t.Errorf("the kernel did not notify the new element %s of %s", a, set)
				continue
			}
			// The element was in the kernel by the time the monitor's
			// notification was read and by the time guard logged it (once
			// the kernel acknowledged it; the log's milliseconds are
			// truncated): the earlier of the two is the kernel's time, and
			// the monitor's stamp, never early, shows it came after the
			// deciding packet.
			kAt := nAt
			if g := gAt.Add(time.Millisecond); g.Before(kAt) {
				kAt = g
			}
			t.Logf("%s %s: report %s; kernel %s, %.2f ms after the deciding packet was written (notified %s, guard logged %s); element %s",
				set, a, at.Format("15:04:05.000000"), kAt.Format("15:04:05.000000"), float64(kAt.Sub(trigger))/1e6,
				nAt.Format("15:04:05.000000"), gAt.Format("15:04:05.000"), stamp(kAdded, clock))
			if !nAt.After(trigger) {
				t.Errorf("%s: in the kernel's %s at %s, not after the deciding packet was written (%s)", a, set, nAt, trigger)
			}
			if d := kAt.Sub(at).Abs(); d > guardTimeTolerance {
				t.Errorf("%s %s: the kernel's add at %s, the report's at %s: %v apart", set, a, kAt.Format("15:04:05.000000"), at.Format("15:04:05.000000"), d)
			}
			if !kAdded.early.IsZero() {
				if early, late := clock(kAdded.early), clock(kAdded.late); at.Before(early.Add(-guardTimeTolerance)) || at.After(late.Add(guardTimeTolerance)) {
					t.Errorf("%s %s: the kernel's element was added between %s and %s, the report's at %s", set, a, early.Format("15:04:05.000"), late.Format("15:04:05.000"), at.Format("15:04:05.000"))
				}
			}
		}
		for a := range got {
			if _, ok := want[a]; !ok {
				t.Errorf("%s is in the kernel's %s, not in the report's %s list", a, set, list)
			}
		}
	}
	if set := "scanners4"; len(kSets[set]) > 0 {
		for a, added := range kSets[set] {
			if added.early.IsZero() {
				t.Errorf("%s in %s has no timeout (the policy bans for 1h)", a, set)
			}
		}
	}
	return rep
}

// span is when an element was added, as far as its expiry tells.
type span struct{ early, late time.Time }

// parseSetElements reads the elements of `nft list set`, listed between
// before and after; for those that expire, when they were added: listed
// less the time they have been in (their timeout less what is left, in
// truncated milliseconds). def is the set's own timeout, which nft does
// not repeat on its elements.
func parseSetElements(t *testing.T, out string, before, after time.Time, def time.Duration) map[netip.Addr]span {
	t.Helper()
	got := map[netip.Addr]span{}
	i := strings.Index(out, "elements = {")
	if i < 0 {
		return got
	}
	body := out[i+len("elements = {"):]
	body = body[:strings.Index(body, "}")]
	body = strings.Join(strings.Fields(body), " ")
	for len(body) > 0 {
		m := nftElem.FindStringSubmatch(body)
		if m == nil || !strings.HasPrefix(body, m[0]) || m[0] == "" {
			t.Fatalf("set elements %q", body)
		}
		e := m[0]
		body = body[len(e):]
		a := netip.MustParseAddr(m[1])
		if m[3] == "" {
			got[a] = span{}
			continue
		}
		timeout := def
		if m[2] != "" {
			var err error
			if timeout, err = time.ParseDuration(m[2]); err != nil {
				t.Fatalf("set element %q: %v", e, err)
			}
		}
		expires, err := time.ParseDuration(m[3])
		if err != nil {
			t.Fatalf("set element %q: %v", e, err)
		}
		age := timeout - expires
		got[a] = span{before.Add(-age), after.Add(-age + time.Millisecond)}
	}
	return got
}

func addrsOf[V any](m map[netip.Addr]V) []string {
	var out []string
	for a := range m {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

func stamp(s span, clock func(time.Time) time.Time) string {
	if s.early.IsZero() {
		return "without timeout"
	}
	return "added between " + clock(s.early).Format("15:04:05.000") + " and " + clock(s.late).Format("15:04:05.000") + " by its expiry"
}

// lastSentBefore returns when the last packet of src written at or before
// at was written, both on the re-timed capture's clock.
func lastSentBefore(frames []*kframe, src netip.Addr, at time.Time, clock func(time.Time) time.Time) time.Time {
	var last time.Time
	for _, f := range frames {
		if f.sent && f.dir == engine.In && srcOf(f.ip) == src {
			if w := clock(f.at); !w.After(at) {
				last = w
			}
		}
	}
	return last
}

// syncLog is a child's output, safe to read while it writes.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
