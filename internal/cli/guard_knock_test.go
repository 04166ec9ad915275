package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// syncBuffer is a bytes.Buffer safe for a child's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// buildSipwall builds the sipwall binary once per test.
func buildSipwall(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sipwall")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/sipwall/sipwall/cmd/sipwall").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestGuardNFTablesKnock runs the real sipwall binary in two throw-away
// namespaces: the server holds the lab's nftables ruleset (sipwall apply)
// and `sipwall guard`, the client a phone and a scanner.
//
//   - A UDP REGISTER carrying the secret hostname from an unknown source is
//     dropped, guard admits the source, and the same REGISTER sent again
//     (the phone's retransmission) reaches the UDP listener on 5060.
//   - A TCP scanner that splits its request over two segments, with
//     `user-agent: friendly-` in the first and `scanner` in the second, is
//     put in the scanners list; none of its data reaches the TCP listener
//     and it can no longer connect.
func TestGuardNFTablesKnock(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	nstest.RequireRoot(t, "nft")
	bin := buildSipwall(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, cli := nstest.New(t, "knock-srv"), nstest.New(t, "knock-cli")
	const (
		server  = "192.0.2.10"
		phone   = "198.51.100.21"
		scanner = "203.0.113.11"
	)
	for _, c := range [][]string{
		// Both ends created in their namespaces: nothing in the host's.
		{"ip", "link", "add", "name", "eth0", "netns", srv, "type", "veth", "peer", "name", "eth0", "netns", cli},
		{"ip", "-n", srv, "link", "set", "eth0", "up"},
		{"ip", "-n", cli, "link", "set", "eth0", "up"},
		{"ip", "-n", srv, "addr", "add", server + "/24", "dev", "eth0"},
		{"ip", "-n", srv, "route", "add", "198.51.100.0/24", "dev", "eth0"},
		{"ip", "-n", srv, "route", "add", "203.0.113.0/24", "dev", "eth0"},
		{"ip", "-n", cli, "addr", "add", phone + "/32", "dev", "eth0"},
		{"ip", "-n", cli, "addr", "add", scanner + "/32", "dev", "eth0"},
		{"ip", "-n", cli, "route", "add", "192.0.2.0/24", "dev", "eth0"},
	} {
		if _, err := netns.Run(ctx, "", nil, c...); err != nil {
			t.Fatal(err)
		}
	}
	policyFile, err := filepath.Abs("../../internal/lab/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	apply := exec.CommandContext(ctx, "ip", "netns", "exec", srv, bin, "apply", "-c", policyFile, "--backend", "nftables", "--state-dir", state, "--confirm", "0", "--without-guard")
	apply.Env = env
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("sipwall apply: %v\n%s", err, out)
	}

	// The listeners of the server, bound inside its namespace.
	var udp *net.UDPConn
	var tcp net.Listener
	if err := netns.Do(srv, func() error {
		var err error
		if udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(server), Port: 5060}); err != nil {
			return err
		}
		tcp, err = net.Listen("tcp", server+":5060")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	defer tcp.Close()
	udpGot := make(chan string, 16)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			udpGot <- from.IP.String() + " " + string(buf[:n])
		}
	}()
	var tcpMu sync.Mutex
	var tcpData bytes.Buffer
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					tcpMu.Lock()
					tcpData.Write(buf[:n])
					tcpMu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()

	// sipwall guard, as the service runs it, in the server's namespace.
	var glog syncBuffer
	guard := exec.Command("ip", "netns", "exec", srv, bin, "guard", "-c", policyFile, "--state-dir", state, "--metrics", "off")
	guard.Env = env
	guard.Stdout, guard.Stderr = &glog, &glog
	guard.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := guard.Start(); err != nil {
		t.Fatal(err)
	}
	guardDone := make(chan error, 1)
	go func() { guardDone <- guard.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-guard.Process.Pid, syscall.SIGKILL)
		<-guardDone
	})
	waitUntil(t, 10*time.Second, "guard running", func() bool {
		select {
		case err := <-guardDone:
			t.Fatalf("guard exited: %v\n%s", err, glog.String())
		default:
		}
		return strings.Contains(glog.String(), `msg="guard running"`)
	})
	if !strings.Contains(glog.String(), "inspector=true") || !strings.Contains(glog.String(), "backend=nftables") {
		t.Fatalf("guard log:\n%s", glog.String())
	}

	// The phone: the first REGISTER is dropped, the retransmission passes.
	var pc *net.UDPConn
	if err := netns.Do(cli, func() error {
		var err error
		pc, err = net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(phone), Port: 5062}, &net.UDPAddr{IP: net.ParseIP(server), Port: 5060})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	register := "REGISTER sip:pbx.example-secret.net SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + phone + ":5062;rport;branch=z9hG4bK-knock1\r\n" +
		"From: <sip:1001@pbx.example-secret.net>;tag=1\r\nTo: <sip:1001@pbx.example-secret.net>\r\n" +
		"Call-ID: knock1@" + phone + "\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@" + phone + ":5062>\r\n" +
		"Max-Forwards: 70\r\nUser-Agent: Zoiper rv2.10.20.4\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n"
	if _, err := pc.Write([]byte(register)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-udpGot:
		t.Fatalf("the first REGISTER of an unknown source reached the listener: %.60q", m)
	case <-time.After(500 * time.Millisecond): // the phone's retransmission timer
	}
	if !setHas(ctx, t, srv, "admitted4", phone) {
		t.Fatalf("guard did not admit the phone; guard log:\n%s", glog.String())
	}
	if _, err := pc.Write([]byte(register)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-udpGot:
		if !strings.HasPrefix(m, phone+" REGISTER sip:pbx.example-secret.net") {
			t.Errorf("listener got %.80q", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("the retransmitted REGISTER did not reach the listener; guard log:\n%s", glog.String())
	}

	// The TCP scanner, its request split over two segments.
	var sc *net.TCPConn
	if err := netns.Do(cli, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(scanner)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", server+":5060")
		if err == nil {
			sc = c.(*net.TCPConn)
		}
		return err
	}); err != nil {
		t.Fatalf("the scanner's handshake: %v (the handshake must complete; data waits for the knock)", err)
	}
	defer sc.Close()
	sc.SetNoDelay(true)
	first := "OPTIONS sip:100@" + server + " SIP/2.0\r\nVia: SIP/2.0/TCP " + scanner + ":5070;branch=z9hG4bK-scan1\r\n" +
		"From: \"100\"<sip:100@1.1.1.1>;tag=6566\r\nuser-agent: friendly-"
	second := "scanner\r\nTo: \"100\"<sip:100@1.1.1.1>\r\nCall-ID: scan1@" + scanner + "\r\nCSeq: 1 OPTIONS\r\n" +
		"Max-Forwards: 70\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
	if _, err := sc.Write([]byte(first)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // two segments, not one
	if _, err := sc.Write([]byte(second)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Second, "the scanner in scanners4", func() bool { return setHas(ctx, t, srv, "scanners4", scanner) })
	if !strings.Contains(glog.String(), `msg="banned a SIP scanner" addr=`+scanner+" signature=friendly-scanner") {
		t.Errorf("guard log does not say it banned the scanner:\n%s", glog.String())
	}
	time.Sleep(300 * time.Millisecond) // TCP retransmissions, if anything got through
	tcpMu.Lock()
	if tcpData.Len() > 0 {
		t.Errorf("the scanner's data reached the TCP listener: %q", tcpData.String())
	}
	tcpMu.Unlock()
	if err := netns.Do(cli, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(scanner)}, Timeout: 500 * time.Millisecond}
		c, err := d.Dial("tcp", server+":5060")
		if err == nil {
			c.Close()
			return fmt.Errorf("the banned scanner connected again")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if setHas(ctx, t, srv, "admitted4", scanner) {
		t.Error("the scanner was admitted")
	}
	select {
	case err := <-guardDone:
		t.Fatalf("guard exited: %v\n%s", err, glog.String())
	default:
	}
}

// setHas reports whether set of table inet sipwall in ns holds addr.
func setHas(ctx context.Context, t *testing.T, ns, set, addr string) bool {
	t.Helper()
	out, err := netns.Run(ctx, ns, nil, "nft", "list", "set", "inet", "sipwall", set)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.FieldsFunc(out, func(r rune) bool { return r == ' ' || r == ',' || r == '{' || r == '}' || r == '\n' || r == '\t' }) {
		if f == addr {
			return true
		}
	}
	return false
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
