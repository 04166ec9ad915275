package boottest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Debian root the container boots: what a minimal bookworm server has,
// plus the tools sipwall drives.
var (
	suite    = "bookworm"
	variant  = "important"
	packages = []string{"systemd-sysv", "iproute2", "nftables", "iptables", "ipset", "conntrack"}
)

var (
	tarOnce sync.Once
	tarPath string
	tarErr  error
)

// rootTarball returns the bookworm root as a tarball, built by mmdebstrap
// once and kept in the cache directory under a name that changes with the
// package list.
func rootTarball(t *testing.T) string {
	t.Helper()
	tarOnce.Do(func() {
		dir := os.Getenv("SIPWALL_TEST_CACHE")
		if dir == "" {
			dir = "/var/cache/sipwall-test"
		}
		key := fmt.Sprintf("%s %s %s", suite, variant, strings.Join(packages, ","))
		tarPath = filepath.Join(dir, fmt.Sprintf("%s-%.6x.tar", suite, sha256.Sum256([]byte(key))))
		if _, err := os.Stat(tarPath); err == nil {
			return
		}
		if tarErr = os.MkdirAll(dir, 0o755); tarErr != nil {
			return
		}
		tmp := tarPath + ".tmp" + strconv.Itoa(os.Getpid())
		cmd := exec.Command("mmdebstrap", "--quiet", "--variant="+variant, "--include="+strings.Join(packages, ","), suite, tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			tarErr = fmt.Errorf("mmdebstrap: %v\n%s", err, out)
			return
		}
		tarErr = os.Rename(tmp, tarPath)
	})
	if tarErr != nil {
		t.Fatal(tarErr)
	}
	return tarPath
}

// container is a Debian root booted by systemd-nspawn with systemd as PID 1.
type container struct {
	t       *testing.T
	root    string
	nspawn  *exec.Cmd
	exited  chan struct{}
	console *bytes.Buffer
	mu      sync.Mutex
	leader  int // the container's PID 1, as the host sees it
}

// lockedWriter lets nspawn's output be read while it writes.
type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newContainer(t *testing.T, tarball string) *container {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-C", root, "--numeric-owner", "-xf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	c := &container{t: t, root: root, console: &bytes.Buffer{}}
	t.Cleanup(c.kill)
	return c
}

// canRun tells whether systemd-nspawn can start a container here at all: a
// host without the kernel features it needs cannot run the boot test.
func (c *container) canRun() error {
	out, err := exec.Command("systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--private-network", "-D", c.root, "/bin/true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// boot starts the container and waits until systemd says it is running.
func (c *container) boot() {
	t := c.t
	t.Helper()
	c.nspawn = exec.Command("systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--private-network", "-D", c.root)
	w := lockedWriter{&c.mu, c.console}
	c.nspawn.Stdout, c.nspawn.Stderr = w, w
	c.nspawn.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	c.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(c.nspawn, c.exited)

	// The container's PID 1 is nspawn's child running systemd.
	deadline := time.Now().Add(30 * time.Second)
	c.leader = 0
	for c.leader == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no systemd in the container after 30 s; console:\n%s", c.output())
		}
		select {
		case <-c.exited:
			t.Fatalf("systemd-nspawn exited: %v; console:\n%s", c.nspawn.ProcessState, c.output())
		case <-time.After(100 * time.Millisecond):
		}
		for _, pid := range children(c.nspawn.Process.Pid) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
				c.leader = pid
			}
		}
	}
	// systemctl talks to systemd over /run/systemd/private: until systemd
	// has made it, systemctl cannot ask anything.
	c.waitFor("systemd's private socket", 60*time.Second, "test -S /run/systemd/private && echo up", func(s string) bool { return s == "up" })
	state, _ := c.sh(90*time.Second, "systemctl is-system-running --wait")
	if state != "running" {
		failed, _ := c.sh(10*time.Second, "systemctl --failed --no-legend; journalctl -b -p warning --no-pager | tail -50")
		t.Fatalf("systemctl is-system-running: %q\n%s\nconsole:\n%s", state, failed, c.output())
	}
	if failed := c.mustSh("systemctl list-units --failed --no-legend --plain"); failed != "" {
		t.Fatalf("failed units: %s", failed)
	}
}

func children(pid int) []int {
	var pids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

func (c *container) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.console.String()
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// sh runs a shell command in every namespace of the container and returns
// its output, trimmed.
func (c *container) sh(timeout time.Duration, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(c.leader), "-a", "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "TERM=dumb"}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (c *container) mustSh(script string) string {
	c.t.Helper()
	out, err := c.sh(2*time.Minute, script)
	if err != nil {
		c.t.Fatalf("in the container: %s: %v\n%s", script, err, out)
	}
	return out
}

// stop asks systemd to reboot or power off and waits for nspawn to exit.
func (c *container) stop(verb string) {
	c.t.Helper()
	c.sh(30*time.Second, "systemctl "+verb)
	select {
	case <-c.exited:
	case <-time.After(90 * time.Second):
		c.t.Fatalf("the container did not %s in 90 s; console:\n%s", verb, c.output())
	}
}

func (c *container) kill() {
	if c.nspawn == nil || c.nspawn.Process == nil {
		return
	}
	select {
	case <-c.exited:
	default:
		c.nspawn.Process.Signal(syscall.SIGTERM) // nspawn powers the container off
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.nspawn.Process.Kill()
			<-c.exited
		}
	}
}

// show returns systemctl show's value of a unit's property.
func (c *container) show(unit, prop string) string {
	c.t.Helper()
	return strings.TrimPrefix(c.mustSh("systemctl show -p "+prop+" "+unit), prop+"=")
}

func (c *container) monotonic(unit, prop string) uint64 {
	c.t.Helper()
	v, err := strconv.ParseUint(c.show(unit, prop), 10, 64)
	if err != nil {
		c.t.Fatalf("%s %s: %v", unit, prop, err)
	}
	return v
}

// firewall is the container's whole ruleset (every backend's), without the
// counters and timeouts that change by themselves.
func (c *container) firewall() string {
	c.t.Helper()
	s := c.mustSh("nft list ruleset; iptables-save; ip6tables-save; ipset list -n")
	for _, re := range []string{`\[\d+:\d+\]`, `(?m)^# .*$`, `packets \d+ bytes \d+`, `expires [0-9hmsd.]+`} {
		s = regexp.MustCompile(re).ReplaceAllString(s, "")
	}
	// A ban's timeout is what it had left when it was last loaded.
	timeout := regexp.MustCompile(`timeout [0-9hmsd.]+`)
	return regexp.MustCompile(`(?m)elements = \{[^}]*\}`).ReplaceAllStringFunc(s, func(e string) string {
		return timeout.ReplaceAllString(e, "timeout")
	})
}

func (c *container) waitFor(what string, timeout time.Duration, script string, ok func(string) bool) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, _ := c.sh(30*time.Second, script)
		if ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not after %v:\n%s", what, timeout, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The guard's hardening as systemctl shows it once the unit runs.
var hardening = map[string]string{
	"NoNewPrivileges":         "yes",
	"ProtectSystem":           "strict",
	"ProtectHome":             "yes",
	"PrivateTmp":              "yes",
	"PrivateDevices":          "yes",
	"ProtectKernelTunables":   "yes",
	"ProtectKernelModules":    "yes",
	"ProtectControlGroups":    "yes",
	"RestrictRealtime":        "yes",
	"MemoryDenyWriteExecute":  "yes",
	"CapabilityBoundingSet":   "cap_net_admin cap_net_raw",
	"AmbientCapabilities":     "cap_net_admin cap_net_raw",
	"RestrictAddressFamilies": "AF_INET AF_INET6 AF_NETLINK AF_UNIX",
	"ReadWritePaths":          "/var/lib/sipwall",
}

// securityLine is a failed login as Asterisk's security log writes it.
func securityLine(addr string, n int) string {
	return fmt.Sprintf(`[2026-12-01 10:00:%02d] SECURITY[1234] res_security_log.c: SecurityEvent="InvalidPassword",EventTV="2026-12-01T10:00:%02d.000+0000",Severity="Error",Service="PJSIP",EventVersion="2",AccountID="100",SessionID="s%d",LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="IPV4/UDP/%s/5060",Challenge="c",ReceivedChallenge="c",ReceivedHash="h"`, n, n, n, addr)
}

// TestBoot installs the package in a booted Debian and runs sipwall the way
// an administrator does, through a reboot, on each backend.
func TestBoot(t *testing.T) {
	requireRoot(t, "mmdebstrap", "systemd-nspawn", "nsenter", "tar", "dpkg-deb")
	deb := theDeb(t)
	tarball := rootTarball(t)
	for _, backend := range []string{"nftables", "iptables"} {
		t.Run(backend, func(t *testing.T) { bootTest(t, backend, deb, tarball) })
	}
}

func bootTest(t *testing.T, backend, deb, tarball string) {
	c := newContainer(t, tarball)
	if err := c.canRun(); err != nil {
		// Only a host where nspawn cannot start any container at all
		// gets past this, in CI too: say so plainly.
		t.Skipf("systemd-nspawn cannot run a container on this host, so sipwall's boot test cannot run: %v", err)
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.root, "root/sipwall.deb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	c.boot()

	// Installing enables nothing, writes no policy and leaves the firewall.
	before := c.firewall()
	// As the README says: apt install ./sipwall_*.deb (what it depends on
	// is in the root already; the container has no network).
	out := c.mustSh("cd /root && apt-get install -y ./sipwall.deb")
	if !strings.Contains(out, "nothing enabled, the firewall untouched") {
		t.Errorf("dpkg -i said:\n%s", out)
	}
	if after := c.firewall(); after != before {
		t.Errorf("installing changed the firewall:\n%s\n---\n%s", before, after)
	}
	for _, u := range []string{"sipwall-restore.service", "sipwall-save.timer", "sipwall-guard.service"} {
		if s, _ := c.sh(time.Minute, "systemctl is-enabled "+u); s != "disabled" {
			t.Errorf("%s is %q after install", u, s)
		}
	}
	if out, _ := c.sh(time.Minute, "ls /etc/sipwall"); !strings.Contains(out, "No such file") {
		t.Errorf("/etc/sipwall after install: %s", out)
	}
	if v := c.mustSh("sipwall --version"); !strings.Contains(filepath.Base(deb), strings.Fields(v)[1]) {
		t.Errorf("sipwall --version: %s", v)
	}

	// A policy from the shipped example, with the guard reading Asterisk's
	// security log, applied; two bans.
	c.mustSh(`mkdir -p /etc/sipwall /var/log/asterisk && touch /var/log/asterisk/security &&
sed 's/pbx-7f3k.example.net/pbx-boot-9q2w.example.net/' /usr/share/sipwall/examples/pbx.yaml >/etc/sipwall/sipwall.yaml &&
cat >>/etc/sipwall/sipwall.yaml <<'EOF'

guard:
  logs: [/var/log/asterisk/security]
  maxretry: 3
  metrics: "off"
EOF`)
	c.mustSh("sipwall check")
	c.mustSh("sipwall apply --backend " + backend)
	c.mustSh(`sipwall ban 203.0.113.7 --reason "boot test" && sipwall ban 2001:db8:66::/48 --for 1d`)
	kernelHas := func(what string) string {
		if backend == "nftables" {
			return "nft list table inet sipwall | grep -c -F " + what
		}
		return "ipset list | grep -c -F " + what
	}
	for _, a := range []string{"203.0.113.7", "2001:db8:66::/48"} {
		c.mustSh(kernelHas(a))
	}
	c.mustSh("systemctl enable sipwall-restore.service sipwall-save.timer sipwall-guard.service && sipwall save")
	applied := c.firewall()

	c.stop("reboot")
	c.boot()

	// systemd ran sipwall-restore.service, successfully, and it was done
	// before network-pre.target (and so before any network unit).
	if r := c.show("sipwall-restore.service", "Result"); r != "success" {
		t.Errorf("sipwall-restore.service: Result=%s", r)
	}
	if s := c.show("sipwall-restore.service", "ExecMainStatus"); s != "0" {
		t.Errorf("sipwall-restore.service: ExecMainStatus=%s", s)
	}
	started := c.monotonic("sipwall-restore.service", "ExecMainStartTimestampMonotonic")
	done := c.monotonic("sipwall-restore.service", "ActiveEnterTimestampMonotonic")
	netPre := c.monotonic("network-pre.target", "ActiveEnterTimestampMonotonic")
	if started == 0 || done == 0 || netPre == 0 || done > netPre {
		t.Errorf("sipwall-restore.service started at %d µs and was done at %d µs; network-pre.target reached at %d µs", started, done, netPre)
	}
	if n := c.mustSh("systemctl show -p ExecMainStartTimestampMonotonic networking.service systemd-networkd.service"); n != "" {
		for _, l := range strings.Split(n, "\n") {
			v, _ := strconv.ParseUint(strings.TrimPrefix(l, "ExecMainStartTimestampMonotonic="), 10, 64)
			if v != 0 && v < done {
				t.Errorf("a network unit started at %d µs, before sipwall-restore.service was done (%d µs)", v, done)
			}
		}
	}
	if j := c.mustSh("journalctl -b -u sipwall-restore.service --no-pager -o cat"); !strings.Contains(j, "Finished sipwall-restore.service") {
		t.Errorf("the journal of sipwall-restore.service:\n%s", j)
	}
	t.Logf("sipwall-restore.service ran from %d to %d µs (monotonic clock); network-pre.target reached at %d µs", started, done, netPre)

	// The ruleset and the bans are back, as they were.
	for _, a := range []string{"203.0.113.7", "2001:db8:66::/48"} {
		c.mustSh(kernelHas(a))
	}
	if lists := c.mustSh("sipwall lists banned"); !strings.Contains(lists, "boot test") {
		t.Errorf("sipwall lists after the reboot:\n%s", lists)
	}
	if got := c.firewall(); got != applied {
		t.Errorf("the ruleset after the reboot differs from the one applied:\n%s\n---\n%s", applied, got)
	}

	// guard runs under its hardening, and bans through it.
	c.waitFor("sipwall-guard.service active", 20*time.Second, "systemctl is-active sipwall-guard.service", func(s string) bool { return s == "active" })
	for prop, want := range hardening {
		if got := c.show("sipwall-guard.service", prop); got != want {
			t.Errorf("sipwall-guard.service %s=%q, want %q", prop, got, want)
		}
	}
	pid := c.show("sipwall-guard.service", "MainPID")
	status := c.mustSh("grep -E '^(NoNewPrivs|CapBnd|CapEff|Seccomp):' /proc/" + pid + "/status")
	for _, want := range []string{"NoNewPrivs:\t1", "CapBnd:\t0000000000003000", "CapEff:\t0000000000003000", "Seccomp:\t2"} {
		if !strings.Contains(status, want) {
			t.Errorf("guard's process: want %q in\n%s", want, status)
		}
	}
	if ro := c.mustSh("awk '$5 == \"/\" {print $6}' /proc/" + pid + "/mountinfo"); !strings.HasPrefix(ro, "ro") {
		t.Errorf("guard's / is mounted %q, want read-only (ProtectSystem=strict)", ro)
	}
	var lines []string
	for i := 1; i <= 3; i++ {
		lines = append(lines, securityLine("198.51.100.66", i))
	}
	c.mustSh("cat >>/var/log/asterisk/security <<'EOF'\n" + strings.Join(lines, "\n") + "\nEOF")
	c.waitFor("guard's ban of 198.51.100.66 in the kernel", 20*time.Second, kernelHas("198.51.100.66"), func(s string) bool { return s != "" && s != "0" })
	c.mustSh("systemctl stop sipwall-guard.service")
	if s, _ := c.sh(time.Minute, "systemctl is-active sipwall-guard.service"); s != "inactive" {
		j, _ := c.sh(time.Minute, "systemctl show -p Result,ExecMainStatus,ExecMainCode sipwall-guard.service; journalctl -b -u sipwall-guard.service --no-pager | tail -40")
		t.Errorf("guard after stop: %s\n%s", s, j)
	}

	// Removing and purging never touch the firewall; purge removes the
	// state only when asked.
	fw := c.firewall()
	c.mustSh("dpkg --remove sipwall")
	if c.firewall() != fw {
		t.Error("dpkg --remove changed the firewall")
	}
	c.mustSh("test -e /var/lib/sipwall/state.json && test -e /etc/sipwall/sipwall.yaml && ! test -e /usr/sbin/sipwall")
	purge := "dpkg --purge sipwall"
	if backend == "nftables" {
		out := c.mustSh(purge)
		if !strings.Contains(out, "kept /var/lib/sipwall") {
			t.Errorf("purge without asking said:\n%s", out)
		}
		c.mustSh("test -e /var/lib/sipwall/lists.json")
		c.mustSh("dpkg -i /root/sipwall.deb")
		purge = "SIPWALL_PURGE_STATE=yes dpkg --purge sipwall"
	} else {
		c.mustSh("touch /var/lib/sipwall/remove-on-purge")
	}
	c.mustSh(purge)
	if out, _ := c.sh(time.Minute, "ls -d /var/lib/sipwall /lib/systemd/system/sipwall-* /etc/systemd/system/*.wants/sipwall-* 2>&1"); strings.Count(out, "No such file") != 3 {
		t.Errorf("after purge:\n%s", out)
	}
	c.mustSh("test -e /etc/sipwall/sipwall.yaml")
	if c.firewall() != fw {
		t.Error("dpkg --purge changed the firewall")
	}
	if failed := c.mustSh("systemctl daemon-reload && systemctl list-units --failed --no-legend --plain"); failed != "" {
		t.Errorf("failed units after purge: %s", failed)
	}
	c.stop("poweroff")
}
