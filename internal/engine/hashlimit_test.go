package engine_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/ir"
	"github.com/sipwall/sipwall/internal/packet"
	"github.com/sipwall/sipwall/internal/policy"
)

// labWithRateSize compiles examples/lab.yaml with every per-source rate
// table limited to size entries.
func labWithRateSize(t *testing.T, b backend.Name, size int) *engine.Program {
	t.Helper()
	p, err := policy.LoadFile("../../examples/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := compile.Compile(p, compile.Options{Backend: backend.Name(b)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			for i, m := range r.Matches {
				if s, ok := m.(ir.SourceRateOver); ok {
					s.Size = size
					r.Matches[i] = s
				}
			}
		}
	}
	prog, err := engine.Compile(rs, b)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// syn is a TCP SYN from src to the lab server's SSH port.
func syn(t *testing.T, src string, port uint16) *packet.Packet {
	t.Helper()
	ip := []byte{0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0}
	ip = append(ip, netip.MustParseAddr(src).AsSlice()...)
	ip = append(ip, 192, 0, 2, 10)
	tcp := make([]byte, 20)
	tcp[0], tcp[1] = byte(port>>8), byte(port)
	tcp[2], tcp[3] = 2222>>8, 2222&0xff
	tcp[12], tcp[13] = 5<<4, packet.TCPSyn
	var p packet.Packet
	if err := packet.Decode(packet.LinkRaw, append(ip, tcp...), &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestHashlimitFullTable: with the table full, a new source's packet is
// dropped on the spot (dsthash_alloc_init fails, the match sets hotdrop):
// the rule does not count it, no later rule or policy sees it. Expired
// entries leave the table at the collector's runs (every second), not at
// their expiry. The table holds max(htable-max, htable-size) entries:
// a max of 2 holds the default 8192 (TestKernelHashlimitFull checks both
// against the kernel).
func TestHashlimitFullTable(t *testing.T) {
	prog := labWithRateSize(t, backend.IPTables, 2)
	e := engine.New(prog, engine.Options{})
	limit, ssh := -1, -1
	for i, r := range prog.Rules {
		if r.Family == ir.IPv4 && strings.Contains(r.Text, "--hashlimit-name sipwall-syn") {
			limit = i
		}
		if r.Family == ir.IPv4 && strings.Contains(r.Text, "--dport 2222") {
			ssh = i
		}
	}
	if limit < 0 || ssh < 0 {
		t.Fatal("lab ruleset without the SYN limit or the SSH rule")
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	send := func(src string, at time.Duration) *engine.Result {
		return e.Process(&engine.Input{Pkt: syn(t, src, 40000+uint16(at/time.Millisecond)), Time: base.Add(at), Dir: engine.In})
	}
	if r := send("198.51.100.1", 0); r.Verdict != engine.Accepted {
		t.Fatalf("first source: %v, want accepted", r.Verdict)
	}
	// 8191 more sources within the same millisecond fill the table.
	for i := 1; i < 8192; i++ {
		src := netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}).String()
		if r := send(src, time.Millisecond); r.Verdict != engine.Accepted {
			t.Fatalf("source %d (%s): %v, want accepted", i, src, r.Verdict)
		}
	}
	before := e.Counters[ssh]
	pol := e.PolicyCounter("INPUT")
	r := send("198.51.100.3", 2*time.Millisecond)
	if r.Verdict != engine.Dropped || r.Rule != limit {
		t.Fatalf("third source, table full: %v by rule %d, want dropped by the SYN limit (%d)", r.Verdict, r.Rule, limit)
	}
	if c := e.Counters[limit]; c.Packets != 0 {
		t.Errorf("the SYN limit counted %d packets; a hotdrop counts none", c.Packets)
	}
	if e.Counters[ssh] != before || e.PolicyCounter("INPUT") != pol {
		t.Errorf("rules after the hashlimit saw the hotdropped packet")
	}
	// A source already in the table still passes.
	if r := send("198.51.100.1", 3*time.Millisecond); r.Verdict != engine.Accepted {
		t.Errorf("known source with a full table: %v", r.Verdict)
	}
	// The entries expire 10 s after their last packet (htable-expire
	// 10000 ms), 10.003 s here; the collector runs at 10 s and 11 s after
	// the first packet: still full at 10.5 s, room at 11 s.
	if r := send("198.51.100.3", 10500*time.Millisecond); r.Verdict != engine.Dropped {
		t.Errorf("expired but not yet collected: %v, want dropped", r.Verdict)
	}
	if r := send("198.51.100.3", 11000*time.Millisecond); r.Verdict != engine.Accepted {
		t.Errorf("after the collector ran: %v, want accepted", r.Verdict)
	}
}

// TestNFTRateFullSet: nftables' dynset on a full set stops the rule (the
// packet goes on to the next rule), it does not drop.
func TestNFTRateFullSet(t *testing.T) {
	prog := labWithRateSize(t, backend.NFTables, 2)
	e := engine.New(prog, engine.Options{})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, src := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		r := e.Process(&engine.Input{Pkt: syn(t, src, 40000+uint16(i)), Time: base.Add(time.Duration(i) * time.Millisecond), Dir: engine.In})
		if r.Verdict != engine.Accepted {
			t.Errorf("%s: %v, want accepted (a full set stops only the rule)", src, r.Verdict)
		}
	}
}
