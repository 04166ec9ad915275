package replay_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/replay"
)

// guardReplay replays capture on policy's nftables ruleset with guard
// modelled as the CLI configures it, and returns the report and each
// incoming packet's verdict by source, in order.
func guardReplay(t *testing.T, p *policy.Policy, capture []byte, delay time.Duration) (*replay.Report, map[netip.Addr][]engine.Verdict) {
	t.Helper()
	rs, err := compile.Compile(p, compile.Options{Backend: backend.NFTables})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := engine.Compile(rs, backend.NFTables)
	if err != nil {
		t.Fatal(err)
	}
	opt := replay.Options{Local: labLocal, Hostnames: p.SIP.Hostnames, Guard: replay.GuardFromPolicy(p)}
	if opt.Guard == nil {
		t.Fatal("no guard for the policy")
	}
	opt.Guard.Delay = delay
	var order []engine.Verdict
	opt.Trace = func(_ string, _ int, d engine.Direction, v engine.Verdict) {
		if d == engine.In {
			order = append(order, v)
		}
	}
	rep, err := replay.Run(prog, []replay.Input{{Name: "guard.pcap", R: bytes.NewReader(capture)}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	// Attribute the verdicts to sources by replaying the order of the
	// report's packets: the trace has no addresses, the capture does.
	bySrc := map[netip.Addr][]engine.Verdict{}
	srcs := incomingSources(t, capture)
	if len(srcs) != len(order) {
		t.Fatalf("%d incoming packets, %d verdicts", len(srcs), len(order))
	}
	for i, a := range srcs {
		bySrc[a] = append(bySrc[a], order[i])
	}
	return rep, bySrc
}

func verdictsEqual(a, b []engine.Verdict) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const acc, drop = engine.Accepted, engine.Dropped

// TestGuardInspectorEvasions: replay on nftables runs guard's inspector, so
// the evasions it exists for are seen as guard sees them: (a) a scanner
// signature split over two TCP segments bans the scanner after the second
// segment; (b) an allowed User-Agent folded over two lines admits the
// phone; (c) the secret hostname carried only in a TLS ClientHello's
// server name admits the phone. The deciding packet itself is not
// affected (guard reads it from nflog after the kernel decided it); the
// next packets are.
func TestGuardInspectorEvasions(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, delay := range []time.Duration{0, replay.DefaultGuardDelay} {
		t.Run(delay.String(), func(t *testing.T) {
			rep, v := guardReplay(t, loadPolicyText(t, gHostnamePolicy), hostnameCapture(t), delay)
			// (a) SYN, ACK, both halves held back; the new connection's
			// SYN and ACK and the UDP OPTIONS dropped as a banned
			// scanner's.
			if want := []engine.Verdict{acc, acc, drop, drop, drop, drop, drop}; !verdictsEqual(v[gScanner], want) {
				t.Errorf("scanner: %v, want %v", v[gScanner], want)
			}
			banned := listsOf(rep, replay.ListScanner)
			if at, ok := banned[gScanner]; !ok || !at.Equal(base.Add(gScanSplit+delay)) {
				t.Errorf("scanner banned %v (%v), want at the second segment + %v", at, ok, delay)
			}
			// (c) the ClientHello held back, its retransmission accepted.
			if want := []engine.Verdict{acc, acc, drop, acc}; !verdictsEqual(v[gTLSPhone], want) {
				t.Errorf("TLS phone: %v, want %v", v[gTLSPhone], want)
			}
			if want := []engine.Verdict{acc, acc, drop, drop}; !verdictsEqual(v[gTLSOther], want) {
				t.Errorf("TLS client naming another host: %v, want %v", v[gTLSOther], want)
			}
			admitted := listsOf(rep, replay.ListAdmitted)
			if at, ok := admitted[gTLSPhone]; !ok || !at.Equal(base.Add(gTLSHello+delay)) || len(admitted) != 1 || len(banned) != 1 {
				t.Errorf("admitted %v, banned %v: want the TLS phone at its ClientHello + %v, the scanner", admitted, banned, delay)
			}

			rep, v = guardReplay(t, loadPolicyText(t, gUserAgentPolicy), userAgentCapture(t), delay)
			// (b) the REGISTER dropped, its retransmission and the OPTIONS
			// accepted; the other phone's all dropped.
			if want := []engine.Verdict{drop, acc, acc}; !verdictsEqual(v[gFoldPhone], want) {
				t.Errorf("folded allowed user-agent: %v, want %v", v[gFoldPhone], want)
			}
			if want := []engine.Verdict{drop, drop, drop}; !verdictsEqual(v[gFoldOther], want) {
				t.Errorf("folded other user-agent: %v, want %v", v[gFoldOther], want)
			}
			admitted = listsOf(rep, replay.ListAdmitted)
			if at, ok := admitted[gFoldPhone]; !ok || !at.Equal(base.Add(gFoldFirst+delay)) || len(admitted) != 1 {
				t.Errorf("admitted %v, want the folded phone at its first REGISTER + %v", admitted, delay)
			}
		})
	}
}

// TestGuardDelayInFlight: a packet of a source arriving while guard is
// still writing its decision meets the sets as they were (a UDP packet
// from an unknown source is dropped again, and inspected again) and does
// not decide the source a second time; the one after the delay is
// accepted.
func TestGuardDelayInFlight(t *testing.T) {
	c := newCapWriter(t)
	reg := foldedRegister(gFoldPhone, "Zoiper", "rv2.10.20.4")
	c.udp(0, gFoldPhone, gServer, 5062, 5060, reg)
	c.udp(500*time.Microsecond, gFoldPhone, gServer, 5062, 5060, reg) // within the delay
	c.udp(2*time.Millisecond, gFoldPhone, gServer, 5062, 5060, reg)   // after it
	rep, v := guardReplay(t, loadPolicyText(t, gUserAgentPolicy), c.buf.Bytes(), time.Millisecond)
	if want := []engine.Verdict{drop, drop, acc}; !verdictsEqual(v[gFoldPhone], want) {
		t.Errorf("verdicts %v, want %v", v[gFoldPhone], want)
	}
	s := rep.SourceOf(gFoldPhone)
	if len(s.Lists) != 1 || !s.Lists[0].At.Equal(c.base.Add(time.Millisecond)) {
		t.Errorf("lists %+v, want admitted once, 1 ms after the first REGISTER", s.Lists)
	}
	// With no delay the second REGISTER is accepted already.
	_, v = guardReplay(t, loadPolicyText(t, gUserAgentPolicy), c.buf.Bytes(), 0)
	if want := []engine.Verdict{drop, acc, acc}; !verdictsEqual(v[gFoldPhone], want) {
		t.Errorf("no delay: verdicts %v, want %v", v[gFoldPhone], want)
	}
}

// TestGuardNeverBans: guard bans no trusted source, and replay neither.
func TestGuardNeverBans(t *testing.T) {
	p := loadPolicyText(t, gHostnamePolicy+"trusted:\n  sip: [203.0.113.0/24]\n")
	rep, _ := guardReplay(t, p, hostnameCapture(t), 0)
	if s := rep.SourceOf(gScanner); s == nil || len(s.Lists) != 0 {
		t.Errorf("trusted scanner: %+v", s)
	}
	if _, ok := listsOf(rep, replay.ListAdmitted)[gTLSPhone]; !ok {
		t.Error("the TLS phone is not admitted")
	}
}
