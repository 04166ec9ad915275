package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sipwall/sipwall/internal/netns"
)

// nsPrefix starts the name of every namespace the lab creates, followed by
// the lab's process id, so that parallel labs never collide and a lab can
// recognise the leftovers of one that was killed.
const nsPrefix = "swlab-"

// Addresses of the lab's Internet. All are documentation ranges.
const (
	serverV4 = "192.0.2.10"
	serverV6 = "2001:db8:10::10"
	hostname = "pbx.example-secret.net"
	sshPort  = 2222
)

// host is one namespace on the lab's bridge.
type host struct {
	role  string   // svmap, phone-udp, …
	ns    string   // namespace name
	addrs []string // its addresses (v4 /32, v6 /128, server with prefixes)
}

// internet is one small Internet: a bridge namespace, a server and clients,
// plus the processes started in them. close undoes everything it did.
type internet struct {
	id     string // swlab-PID-RUN
	bridge string
	hosts  map[string]*host
	port   int

	mu      sync.Mutex
	procs   []*proc
	closers []func()
	spaces  []string
	env     []string
}

func newInternet(id string, env []string) *internet {
	return &internet{id: id, bridge: id + "-br", hosts: map[string]*host{}, env: env}
}

// run runs argv in the host namespace (only ip commands that name their
// target namespace) or in ns.
func run(ctx context.Context, ns string, argv ...string) (string, error) {
	return netns.Run(ctx, ns, nil, argv...)
}

func (in *internet) addNS(ctx context.Context, name string) error {
	in.mu.Lock()
	in.spaces = append(in.spaces, name)
	in.mu.Unlock()
	if err := netns.Add(ctx, name); err != nil {
		return fmt.Errorf("lab: namespace %s: %w", name, err)
	}
	return nil
}

// up creates the bridge namespace with its bridge device br0.
func (in *internet) up(ctx context.Context) error {
	if err := in.addNS(ctx, in.bridge); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"ip", "-n", in.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"ip", "-n", in.bridge, "link", "set", "br0", "up"},
	} {
		if _, err := run(ctx, "", c...); err != nil {
			return fmt.Errorf("lab: bridge: %w", err)
		}
	}
	return nil
}

// routes are the lab's ranges as seen from role.
func routes(role string) []string {
	if role == "server" {
		return []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"}
	}
	return []string{"192.0.2.0/24", "2001:db8:10::/64"}
}

// addHost creates a namespace for role, plugs its eth0 into the bridge and
// gives it addrs (v4 without a prefix get /32, v6 /128) and routes to the
// lab's ranges.
func (in *internet) addHost(ctx context.Context, role string, addrs ...string) (*host, error) {
	h := &host{role: role, ns: in.id + "-" + role, addrs: addrs}
	if err := in.addNS(ctx, h.ns); err != nil {
		return nil, err
	}
	in.mu.Lock()
	in.port++
	port := "p" + strconv.Itoa(in.port)
	in.hosts[role] = h
	in.mu.Unlock()
	// Both ends are created directly in their namespaces: nothing ever
	// appears in the host's own namespace.
	steps := [][]string{
		{"ip", "link", "add", "name", port, "netns", in.bridge, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
		{"ip", "-n", in.bridge, "link", "set", port, "master", "br0", "up"},
		{"ip", "-n", h.ns, "link", "set", "eth0", "up"},
	}
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			if !strings.Contains(a, "/") {
				a += "/128"
			}
			steps = append(steps, []string{"ip", "-n", h.ns, "addr", "add", a, "dev", "eth0", "nodad"})
		} else {
			if !strings.Contains(a, "/") {
				a += "/32"
			}
			steps = append(steps, []string{"ip", "-n", h.ns, "addr", "add", a, "dev", "eth0"})
		}
	}
	// Routes on the link to the lab's ranges only, no default route: a
	// program that tries DNS fails at once instead of waiting for an
	// answer that cannot come.
	for _, r := range routes(role) {
		steps = append(steps, []string{"ip", "-n", h.ns, "route", "add", r, "dev", "eth0"})
	}
	for _, s := range steps {
		if _, err := run(ctx, "", s...); err != nil {
			return nil, fmt.Errorf("lab: %s: %w", role, err)
		}
	}
	for i, a := range h.addrs {
		h.addrs[i], _, _ = strings.Cut(a, "/")
	}
	return h, nil
}

// command prepares argv to run in ns ("": here, for a pure command such as
// sipwall compile) in a process group of its own, killed
// as a group when ctx ends, with the lab's environment.
func (in *internet) command(ctx context.Context, ns string, argv ...string) *exec.Cmd {
	full := argv
	if ns != "" {
		full = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Env = in.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// proc is a long-running process of the lab; done is closed once it has
// exited and been reaped, err then says how it ended.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// exited reports whether p has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// start starts a long-running process (a server) that close kills and
// reaps.
func (in *internet) start(cmd *exec.Cmd) (*proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	in.mu.Lock()
	in.procs = append(in.procs, p)
	in.mu.Unlock()
	return p, nil
}

// onClose registers fn to run when the Internet is torn down.
func (in *internet) onClose(fn func()) {
	in.mu.Lock()
	in.closers = append(in.closers, fn)
	in.mu.Unlock()
}

// close kills what was started and deletes the namespaces. It never uses
// the (possibly cancelled) context of the run.
func (in *internet) close() {
	in.mu.Lock()
	procs, closers, spaces := in.procs, in.closers, in.spaces
	in.procs, in.closers, in.spaces = nil, nil, nil
	in.mu.Unlock()
	for _, fn := range closers {
		fn()
	}
	for _, p := range procs {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	for _, ns := range spaces {
		killNS(ns)
		netns.Del(ns)
	}
}

// killNS kills the processes left in namespace ns (the lab's own: every
// process in its namespaces was started by it).
func killNS(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cleanStale removes the namespaces (and their processes) of labs whose
// process no longer exists, such as one killed with SIGKILL.
func cleanStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // that lab is still running
		}
		killNS(name)
		netns.Del(name)
	}
}

// listenTCP opens a TCP listener on port inside ns that accepts and closes
// connections (the SSH port of the server).
func (in *internet) listenTCP(ns string, port int) error {
	var ln net.Listener
	err := netns.Do(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		return fmt.Errorf("lab: listener on port %d: %w", port, err)
	}
	in.onClose(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-lab\r\n"))
			c.Close()
		}
	}()
	return nil
}

// dialTCP reports whether a TCP handshake from src (in ns) to dst:port
// completes within wait.
func dialTCP(ns, src, dst string, port int, wait time.Duration) bool {
	var c net.Conn
	err := netns.Do(ns, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: wait}
		var err error
		c, err = d.Dial("tcp", net.JoinHostPort(dst, strconv.Itoa(port)))
		return err
	})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// sipExchange sends payload over UDP from src (in ns) to dst:5060 and
// reports whether a SIP answer came back within wait.
func sipExchange(ns, src, dst, payload string, wait time.Duration) (bool, error) {
	var c *net.UDPConn
	err := netns.Do(ns, func() error {
		var err error
		c, err = net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(dst), Port: 5060})
		return err
	})
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Write([]byte(payload)); err != nil {
		return false, err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return false, nil
	}
	return strings.HasPrefix(string(buf[:n]), "SIP/2.0 "), nil
}

// sendFrom sends one UDP datagram from each of srcs (all in ns) to dst:5060.
func sendFrom(ns string, srcs []string, dst string, payload func(src string) string) error {
	return netns.Do(ns, func() error {
		for _, s := range srcs {
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(s)}, &net.UDPAddr{IP: net.ParseIP(dst), Port: 5060})
			if err != nil {
				return err
			}
			_, err = c.Write([]byte(payload(s)))
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// sipRequest is a minimal SIP request from src.
func sipRequest(method, uriHost, src, ua string) string {
	via := src
	if strings.Contains(src, ":") {
		via = "[" + src + "]"
	}
	n := time.Now().UnixNano()
	return fmt.Sprintf("%s sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:5060;rport;branch=z9hG4bK-%d\r\nFrom: <sip:1001@%s>;tag=%d\r\nTo: <sip:1001@%s>\r\nCall-ID: %d@lab\r\nCSeq: 1 %s\r\nMax-Forwards: 70\r\nUser-Agent: %s\r\nContent-Length: 0\r\n\r\n",
		method, uriHost, via, n, uriHost, n, uriHost, n, method, ua)
}

func netnsRunStdin(ctx context.Context, ns, stdin string, argv ...string) (string, error) {
	return netns.Run(ctx, ns, strings.NewReader(stdin), argv...)
}
