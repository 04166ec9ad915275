// Package lapitest runs a real CrowdSec Local API for tests: Debian's
// crowdsec package unpacked (never installed: its postinst registers
// online), the LAPI alone (-no-cs -no-capi) on SQLite in a temporary
// folder, and cscli to add bouncers, machines and decisions.
package lapitest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultRoot is where scripts/test unpacks Debian's crowdsec and
// crowdsec-firewall-bouncer packages; $SIPWALL_CROWDSEC_ROOT overrides it.
const DefaultRoot = "/var/cache/sipwall-test/crowdsec"

// Root returns the unpacked packages' root, or fails (CI) / skips the test
// when they are not there.
func Root(t testing.TB) string {
	t.Helper()
	root := os.Getenv("SIPWALL_CROWDSEC_ROOT")
	if root == "" {
		root = DefaultRoot
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/crowdsec")); err != nil {
		msg := fmt.Sprintf("needs Debian's crowdsec unpacked in %s (scripts/test does it)", root)
		if os.Getenv("SIPWALL_REQUIRE_ROOT") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return root
}

// LAPI is a running Local API.
type LAPI struct {
	Root string
	Dir  string
	// URL is its address, like http://127.0.0.1:41234.
	URL string
	// NS is the network namespace it runs in ("" for the current one).
	NS  string
	cmd *exec.Cmd
	log bytes.Buffer
}

// Start runs a LAPI listening on listen (host:port; port 0 picks a free one
// on the current namespace's loopback), inside namespace ns when not "".
func Start(t testing.TB, ns, listen string) *LAPI {
	t.Helper()
	root := Root(t)
	dir := t.TempDir()
	if listen == "" || strings.HasSuffix(listen, ":0") {
		listen = "127.0.0.1:" + strconv.Itoa(freePort(t))
	}
	l := &LAPI{Root: root, Dir: dir, URL: "http://" + listen, NS: ns}
	for _, d := range []string{"etc", "data", "hub"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, filepath.Join(root, "etc/crowdsec/profiles.yaml"), filepath.Join(dir, "etc/profiles.yaml"))
	copyFile(t, filepath.Join(root, "etc/crowdsec/simulation.yaml"), filepath.Join(dir, "etc/simulation.yaml"))
	os.WriteFile(filepath.Join(dir, "hub/.index.json"), []byte("{}"), 0o644)
	cfg := fmt.Sprintf(`common:
  daemonize: false
  log_media: stdout
  log_level: warning
  working_dir: .
config_paths:
  config_dir: %[1]s/etc/
  data_dir: %[1]s/data/
  simulation_path: %[1]s/etc/simulation.yaml
  hub_dir: %[1]s/hub/
  index_path: %[1]s/hub/.index.json
  notification_dir: %[1]s/etc/notifications/
  plugin_dir: %[2]s/usr/lib/crowdsec/plugins/
cscli:
  output: human
db_config:
  log_level: warning
  type: sqlite
  use_wal: true
  db_path: %[1]s/data/crowdsec.db
  flush:
    max_items: 1000000
    max_age: 30d
api:
  client:
    credentials_path: %[1]s/etc/local_api_credentials.yaml
  server:
    log_level: warning
    listen_uri: %[3]s
    profiles_path: %[1]s/etc/profiles.yaml
    trusted_ips: ["127.0.0.1", "::1"]
prometheus:
  enabled: false
`, dir, root, listen)
	if err := os.WriteFile(filepath.Join(dir, "etc/config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// cscli needs the API credentials file to exist for some commands; a
	// machine for cscli itself is added before the LAPI starts.
	l.Cscli(t, "machines", "add", "cscli", "--password", "cscli-password", "-f", filepath.Join(dir, "etc/local_api_credentials.yaml"), "--url", l.URL)
	argv := l.wrap(filepath.Join(root, "usr/bin/crowdsec"), "-c", filepath.Join(dir, "etc/config.yaml"), "-no-cs", "-no-capi")
	l.cmd = exec.Command(argv[0], argv[1:]...)
	l.cmd.Dir = dir
	l.cmd.Stdout, l.cmd.Stderr = &l.log, &l.log
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l.up() {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("the LAPI did not start in 20 s:\n%s", l.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *LAPI) wrap(argv ...string) []string {
	if l.NS != "" {
		return append([]string{"ip", "netns", "exec", l.NS}, argv...)
	}
	return argv
}

func (l *LAPI) up() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	argv := l.wrap("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", l.URL+"/v1/decisions/stream")
	out, _ := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	return strings.TrimSpace(string(out)) == "403" || strings.TrimSpace(string(out)) == "401"
}

// Stop ends the LAPI.
func (l *LAPI) Stop() {
	if l.cmd != nil && l.cmd.Process != nil {
		l.cmd.Process.Kill()
		l.cmd.Wait()
		l.cmd = nil
	}
}

// Cscli runs cscli against this LAPI's configuration and returns its output.
func (l *LAPI) Cscli(t testing.TB, args ...string) string {
	t.Helper()
	argv := l.wrap(append([]string{filepath.Join(l.Root, "usr/bin/cscli"), "-c", filepath.Join(l.Dir, "etc/config.yaml")}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = l.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cscli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// AddBouncer registers a bouncer and returns its API key.
func (l *LAPI) AddBouncer(t testing.TB, name string) string {
	t.Helper()
	key := fmt.Sprintf("%s-key-%d", name, time.Now().UnixNano())
	l.Cscli(t, "bouncers", "add", name, "-k", key)
	return key
}

// AddMachine registers a watcher and returns its password.
func (l *LAPI) AddMachine(t testing.TB, id string) string {
	t.Helper()
	pw := id + "-password-0123456789"
	l.Cscli(t, "machines", "add", id, "--password", pw, "-f", "/dev/null", "--url", l.URL)
	return pw
}

// WriteSecret writes a 0600 file holding s and returns its path.
func WriteSecret(t testing.TB, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
