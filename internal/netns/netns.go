// Package netns creates network namespaces, wires them with veth pairs and
// runs commands and Go code inside them. The kernel tests and the lab use it
// so that nothing they do touches the host's own network namespace.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Run runs argv inside namespace ns ("" for the current one) and returns
// its standard output; the error carries standard error.
func Run(ctx context.Context, ns string, stdin io.Reader, argv ...string) (string, error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Add creates namespace name, removing a stale one of the same name first,
// and brings its loopback up.
func Add(ctx context.Context, name string) error {
	Del(name)
	if _, err := Run(ctx, "", nil, "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := Run(ctx, name, nil, "ip", "link", "set", "lo", "up")
	return err
}

// Del removes namespace name; a missing namespace is not an error.
func Del(name string) {
	exec.Command("ip", "netns", "del", name).Run()
}

// Veth connects namespace a (interface ifA) with namespace b (ifB) and
// brings both ends up.
func Veth(ctx context.Context, a, ifA, b, ifB string) error {
	// Temporary names, unique in the host namespace where the pair is born.
	n := vethSeq.Add(1)
	tmpA := fmt.Sprintf("swa%d.%d", os.Getpid()%100000, n)
	tmpB := fmt.Sprintf("swb%d.%d", os.Getpid()%100000, n)
	steps := [][]string{
		{"ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB},
		{"ip", "link", "set", tmpA, "netns", a},
		{"ip", "link", "set", tmpB, "netns", b},
		{"ip", "-n", a, "link", "set", tmpA, "name", ifA},
		{"ip", "-n", b, "link", "set", tmpB, "name", ifB},
		{"ip", "-n", a, "link", "set", ifA, "up"},
		{"ip", "-n", b, "link", "set", ifB, "up"},
	}
	for _, s := range steps {
		if _, err := Run(ctx, "", nil, s...); err != nil {
			return err
		}
	}
	return nil
}

var vethSeq atomic.Int64

// Do runs fn with the calling goroutine's thread inside namespace ns.
// Sockets that fn creates belong to ns and may be used after Do returns.
func Do(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: setns: %w", ns, err)
	}
	ferr := fn()
	if err := setns(orig); err != nil {
		// The thread is stuck in ns: keep it locked so that it dies with
		// this goroutine instead of running other goroutines there.
		return errors.Join(ferr, fmt.Errorf("netns: restore: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}
