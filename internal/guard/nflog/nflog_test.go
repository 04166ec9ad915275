package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/packet"
	"golang.org/x/sys/unix"
)

const ruleset = `table inet nflogtest {
	chain in {
		type filter hook input priority 0; policy accept;
		udp dport 5060 log prefix "sipwall-inspect" group 5060 drop
		tcp dport 5060 log prefix "sipwall-inspect" group 5060
	}
}
`

func TestReceiveInNamespace(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t, "nflog")
	f, err := os.CreateTemp(t.TempDir(), "*.nft")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(ruleset)
	f.Close()
	nstest.Run(t, ns, "nft", "-f", f.Name())

	var r *Receiver
	if err := netns.Do(ns, func() (err error) { r, err = Open(5060, Options{}); return err }); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// A second receiver on the same group is refused with a clear error.
	if err := netns.Do(ns, func() error {
		r2, err := Open(5060, Options{})
		if err == nil {
			r2.Close()
			return errors.New("second bind succeeded")
		}
		if !strings.Contains(err.Error(), "another process") {
			return fmt.Errorf("second bind: %v", err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// Send UDP datagrams and a TCP connection attempt in the namespace.
	var msgs []string
	for i := 0; i < 20; i++ {
		msgs = append(msgs, fmt.Sprintf("OPTIONS sip:%d@127.0.0.1 SIP/2.0\r\nl: 0\r\n\r\n", i))
	}
	big := "REGISTER sip:x SIP/2.0\r\nSubject: " + strings.Repeat("y", 3000) + "\r\n\r\n"
	msgs = append(msgs, big)
	if err := netns.Do(ns, func() error {
		for _, addr := range []string{"127.0.0.1:5060", "[::1]:5060"} {
			c, err := net.Dial("udp", addr)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if _, err := c.Write([]byte(m)); err != nil {
					return err
				}
			}
			c.Close()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	got := map[string]int{}
	fams := map[uint8]int{}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	var p packet.Packet
	for len(got) < len(msgs) || fams[unix.AF_INET6] < len(msgs) {
		err := r.Receive(func(np *Packet) {
			if string(np.Prefix) != "sipwall-inspect" {
				t.Errorf("prefix %q", np.Prefix)
			}
			if err := packet.Decode(packet.LinkRaw, np.Payload, &p); err != nil {
				t.Errorf("decode: %v", err)
				return
			}
			if p.DstPort != 5060 || !p.Src.IsLoopback() {
				t.Errorf("packet %v:%d -> %v:%d", p.Src, p.SrcPort, p.Dst, p.DstPort)
			}
			if np.Family == unix.AF_INET && p.IPVersion != 4 || np.Family == unix.AF_INET6 && p.IPVersion != 6 {
				t.Errorf("family %d, IP version %d", np.Family, p.IPVersion)
			}
			if np.HWProtocol != binary.BigEndian.Uint16([]byte{0x08, 0x00}) && np.HWProtocol != 0x86dd && np.HWProtocol != 0 {
				t.Errorf("hw protocol %#x", np.HWProtocol)
			}
			got[string(p.Payload)]++
			fams[np.Family]++
		})
		if err != nil {
			t.Fatalf("after %d packets: %v", len(got), err)
		}
	}
	for _, m := range msgs {
		if got[m] != 2 {
			t.Errorf("message %.30q received %d times, want 2 (IPv4 and IPv6)", m, got[m])
		}
	}
	if s := r.Stats(); s.Packets != uint64(2*len(msgs)) || s.Malformed != 0 {
		t.Errorf("stats %+v", s)
	}

	// Nothing more: Receive times out.
	r.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if err := r.Receive(func(*Packet) { t.Error("unexpected packet") }); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("idle receive: %v", err)
	}
}

func TestReceiveAllocs(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t, "nflogalloc")
	f, _ := os.CreateTemp(t.TempDir(), "*.nft")
	f.WriteString(ruleset)
	f.Close()
	nstest.Run(t, ns, "nft", "-f", f.Name())
	var r *Receiver
	var c net.Conn
	if err := netns.Do(ns, func() (err error) {
		if r, err = Open(5060, Options{}); err != nil {
			return err
		}
		c, err = net.Dial("udp", "127.0.0.1:5060")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer c.Close()
	msg := []byte("OPTIONS sip:1@127.0.0.1 SIP/2.0\r\n\r\n")
	n := 0
	count := func(*Packet) { n++ }
	step := func() {
		c.Write(msg)
		if err := r.Receive(count); err != nil {
			t.Fatal(err)
		}
	}
	step()
	send := testing.AllocsPerRun(100, func() { c.Write(msg) })
	for i := 0; i < 101; i++ {
		if err := r.Receive(count); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(100, step)
	// The UDP write on the sending side is not ours; receiving must not
	// add to it.
	if allocs > send {
		t.Errorf("%v allocations per send+receive, %v per send alone: receiving allocates", allocs, send)
	}
	if n < 100 {
		t.Errorf("received %d packets", n)
	}
}
