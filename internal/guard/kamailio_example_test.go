package guard

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/guard/events"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestKamailioExampleRoute runs the real Kamailio with the auth route of
// examples/kamailio-auth-log.cfg (auth_check on a db_text subscriber
// table) in a fresh namespace, sends a wrong password, an unknown user and
// a right password with sipsak, and reads Kamailio's log: one failure per
// wrong attempt, attributed to the sender; nothing for the first,
// unauthenticated request of each attempt, nothing for the right password.
func TestKamailioExampleRoute(t *testing.T) {
	nstest.RequireRoot(t, "kamailio", "sipsak")
	example, err := filepath.Abs("../../examples/kamailio-auth-log.cfg")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(db, "version"), "table_name(str) table_version(int)\nsubscriber:7\nversion:1\n")
	write(filepath.Join(db, "subscriber"), "id(int,auto) username(str) domain(str) password(str) ha1(str,null) ha1b(str,null)\n1:1000:127.0.0.1:secret:x:x\n")
	cfg := filepath.Join(dir, "kamailio.cfg")
	write(cfg, `#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:5099
alias=127.0.0.1
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "siputils.so"
loadmodule "textops.so"
modparam("auth_db", "db_url", "text://`+db+`")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
request_route {
	route(AUTH);
	sl_send_reply("200", "OK");
}
import_file "`+example+`"
`)
	ns := nstest.New(t, "kam")
	nstest.Run(t, ns, "ip", "link", "set", "lo", "up")
	logPath := filepath.Join(dir, "kamailio.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	kam := exec.Command("ip", "netns", "exec", ns, "kamailio", "-DD", "-E", "-Y", dir, "-f", cfg)
	kam.Stdout, kam.Stderr = logf, logf
	if err := kam.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			kam.Process.Signal(os.Interrupt)
			kam.Wait()
		}
	}
	defer stop()
	sipsak := func(user, password string) string {
		out, _ := exec.Command("ip", "netns", "exec", ns, "sipsak", "-U", "-C", "sip:"+user+"@127.0.0.1",
			"-a", password, "-s", "sip:"+user+"@127.0.0.1:5099").CombinedOutput()
		return string(out)
	}
	// Kamailio takes a moment to listen; the first exchange tells.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(sipsak("1000", "wrong"), "WWW-Authenticate") {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("no answer from Kamailio:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sipsak("1999", "whatever")
	if out := sipsak("1000", "secret"); strings.Contains(out, "authorization failed") {
		t.Fatalf("the right password failed: %s", out)
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, l := range strings.Split(string(data), "\n") {
		ev, r, _ := events.ClassifyIn([]byte(l), time.UTC)
		if r != events.Matched {
			continue
		}
		if ev.Kind != events.KamailioAuthFailed || ev.Addr != netip.MustParseAddr("127.0.0.1") || ev.Port == 0 {
			t.Errorf("%+v from %q", ev, l)
		}
		codes = append(codes, l[strings.Index(l, " code ")+6:][:2])
	}
	if strings.Join(codes, ",") != "-2,-3" {
		t.Fatalf("failures logged with codes %v, want -2 (wrong password) then -3 (unknown user); log:\n%s", codes, data)
	}
	// The same through --scan-log's reader.
	rep, err := Scan(context.Background(), []Input{{Name: "kamailio.log", R: strings.NewReader(string(data)), ModTime: time.Now()}}, Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched != 2 || rep.Events["KamailioAuthFailed"] != 2 {
		t.Fatalf("scan: %d matched, events %v", rep.Matched, rep.Events)
	}
}
