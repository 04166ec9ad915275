package replay_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/replay"
)

var backends = []backend.Name{backend.IPTables, backend.NFTables}

// TestScannersGetNothing: svmap, svwar, svcrack, sipsak and nmap: no SIP
// request of the attacker is accepted, with either backend.
func TestScannersGetNothing(t *testing.T) {
	cases := []struct {
		file, addr string
		banned     bool // banned as a scanner by its signature
	}{
		{"svmap.pcap", "203.0.113.11", true},
		{"svwar.pcap", "203.0.113.12", true},
		{"svcrack.pcap", "203.0.113.13", true},
		{"sipsak-options.pcap", "203.0.113.14", true},
		{"nmap-sip.pcap", "203.0.113.15", false}, // "Nmap NSE" is not a signature
	}
	for _, b := range backends {
		p, prog := labProgram(t, b)
		for _, c := range cases {
			t.Run(string(b)+"/"+c.file, func(t *testing.T) {
				rep := replayFiles(t, prog, labOptions(p, b), c.file)
				s := rep.SourceOf(netip.MustParseAddr(c.addr))
				if s == nil || s.SIPRequests == 0 {
					t.Fatalf("no SIP request from %s in the report", c.addr)
				}
				if s.SIPAccepted != 0 {
					t.Errorf("%d of %d SIP requests of %s accepted", s.SIPAccepted, s.SIPRequests, c.addr)
				}
				if _, ok := s.InList(replay.ListScanner); ok != c.banned {
					t.Errorf("scanner-banned = %v, want %v (lists %v)", ok, c.banned, s.Lists)
				}
				if _, ok := s.InList(replay.ListAdmitted); ok {
					t.Errorf("attacker admitted: %v", s.Lists)
				}
				if c.banned && rep.Totals.ScanAttemptsThwarted == 0 {
					t.Errorf("no scan attempt counted as thwarted")
				}
			})
		}
	}
}

// TestPortscanThenSIP: the first trap port bans the source, and nothing
// it sends afterwards is accepted.
func TestPortscanThenSIP(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			p, prog := labProgram(t, b)
			rep := replayFiles(t, prog, labOptions(p, b), "portscan-then-sip.pcap")
			s := rep.SourceOf(netip.MustParseAddr("203.0.113.16"))
			if s == nil {
				t.Fatal("source missing")
			}
			at, ok := s.InList(replay.ListTrapped)
			if !ok {
				t.Fatalf("not trap-banned: %v", s.Lists)
			}
			// Its first trap port is 23, the first SYN of the scan.
			if want := time.Date(2026, 11, 25, 16, 49, 53, 206741000, time.UTC); !at.Equal(want) {
				t.Errorf("trap-banned at %v, want %v (the SYN to port 23)", at, want)
			}
			if s.Accepted != 0 || s.SIPAccepted != 0 {
				t.Errorf("accepted %d packets (%d SIP) after the ban", s.Accepted, s.SIPAccepted)
			}
			if s.FirstDrop == nil || !strings.Contains(s.FirstDrop.Text, "drop") {
				t.Errorf("first drop %+v", s.FirstDrop)
			}
		})
	}
}

// TestSynFloodSSH: hping3 sends 300 SYNs at 200/s; beyond 10/s (burst 10)
// they are dropped by the per-source SYN rate.
func TestSynFloodSSH(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			p, prog := labProgram(t, b)
			rep := replayFiles(t, prog, labOptions(p, b), "synflood-ssh.pcap")
			s := rep.SourceOf(netip.MustParseAddr("203.0.113.17"))
			if s == nil || s.Packets != 300 {
				t.Fatalf("source %+v", s)
			}
			span := s.LastAt.Sub(s.FirstAt).Seconds()
			// A token bucket of 10 per second with burst 10 lets through at
			// most 10 + 10*span SYNs (plus one for the tick granularity).
			maxOK := 10 + int(10*span) + 1
			if s.Accepted > maxOK || s.Accepted < 10 {
				t.Errorf("accepted %d SYNs over %.2fs, want 10..%d", s.Accepted, span, maxOK)
			}
			if _, ok := s.InList(replay.ListRateLimited); !ok {
				t.Errorf("not rate-limited: %v", s.Lists)
			}
			if s.FirstDrop == nil || !strings.Contains(s.FirstDrop.Text, "10/s") {
				t.Errorf("first drop by %+v, want the SYN rate rule", s.FirstDrop)
			}
		})
	}
}

// TestLegitPhonesIPTables: with iptables, the phones' SIP gets through.
func TestLegitPhonesIPTables(t *testing.T) {
	p, prog := labProgram(t, backend.IPTables)
	t.Run("udp", func(t *testing.T) {
		rep := replayFiles(t, prog, labOptions(p, backend.IPTables), "legit-udp.pcap")
		s := rep.SourceOf(netip.MustParseAddr("198.51.100.21"))
		if s == nil || s.Dropped != 0 || s.Accepted != s.Packets || s.SIPAccepted != 4 {
			t.Fatalf("phone %+v: want every packet accepted", s)
		}
		if _, ok := s.InList(replay.ListAdmitted); !ok || !s.Knocked {
			t.Errorf("phone not admitted: %v", s.Lists)
		}
		if len(rep.Totals.LockedOut) != 0 || rep.Totals.PhonesAdmitted != 1 {
			t.Errorf("totals %+v", rep.Totals)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		rep := replayFiles(t, prog, labOptions(p, backend.IPTables), "legit-tcp.pcap")
		s := rep.SourceOf(netip.MustParseAddr("198.51.100.22"))
		if s == nil || s.SIPRequests != 4 || s.SIPAccepted != 4 {
			t.Fatalf("phone %+v: want every SIP request accepted", s)
		}
		// Every packet is accepted, the handshake's bare ACK included: it
		// carries no data, so it does not wait for the knock.
		if s.Dropped != 0 || s.Accepted != s.Packets {
			t.Errorf("%d of %d packets dropped, want none", s.Dropped, s.Packets)
		}
		if s.Dropped == 1 && (s.FirstDrop == nil || !strings.Contains(s.FirstDrop.Text, "no knock yet") || s.FirstDrop.Packet != 3) {
			t.Errorf("unexpected drop %+v", s.FirstDrop)
		}
		if _, ok := s.InList(replay.ListAdmitted); !ok {
			t.Errorf("phone not admitted: %v", s.Lists)
		}
	})
}

// TestLegitPhonesNFTables: with nftables, guard admits the phone on its
// first packet, which the kernel has already dropped (nflog is
// asynchronous); everything after it is accepted.
func TestLegitPhonesNFTables(t *testing.T) {
	p, prog := labProgram(t, backend.NFTables)
	for _, c := range []struct{ file, addr string }{{"legit-udp.pcap", "198.51.100.21"}, {"legit-tcp.pcap", "198.51.100.22"}} {
		t.Run(c.file, func(t *testing.T) {
			rep := replayFiles(t, prog, labOptions(p, backend.NFTables), c.file)
			s := rep.SourceOf(netip.MustParseAddr(c.addr))
			at, ok := s.InList(replay.ListAdmitted)
			if !ok {
				t.Fatalf("phone not admitted: %v", s.Lists)
			}
			if s.SIPAccepted != s.SIPRequests-1 {
				t.Errorf("%d of %d SIP requests accepted, want all but the knock", s.SIPAccepted, s.SIPRequests)
			}
			if s.FirstDrop == nil || s.FirstDrop.At.After(at) {
				t.Errorf("a drop after the admission: %+v", s.FirstDrop)
			}
		})
	}
}

// TestRegisterFlood: the phone is admitted; REGISTERs beyond 20 per 10 s
// are dropped.
func TestRegisterFlood(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			p, prog := labProgram(t, b)
			rep := replayFiles(t, prog, labOptions(p, b), "register-flood.pcap")
			s := rep.SourceOf(netip.MustParseAddr("198.51.100.23"))
			if s == nil {
				t.Fatal("phone missing")
			}
			if _, ok := s.InList(replay.ListAdmitted); !ok {
				t.Fatalf("not admitted: %v", s.Lists)
			}
			if _, ok := s.InList(replay.ListRateLimited); !ok {
				t.Fatalf("not rate-limited: %v", s.Lists)
			}
			span := s.LastAt.Sub(s.FirstAt).Seconds()
			maxOK := 20 + int(2*span) + 1
			reg := s.Methods["REGISTER"]
			if reg == nil || reg.Accepted > maxOK || reg.Accepted < 20 || reg.Seen != 400 {
				t.Errorf("REGISTERs %+v over %.1fs, want 400 seen and 20..%d accepted", reg, span, maxOK)
			}
			if ack := s.Methods["ACK"]; ack == nil || ack.Accepted != ack.Seen {
				t.Errorf("ACKs %+v: an admitted phone's ACKs are not limited", ack)
			}
			// The phone knocked and was still refused: the report says so.
			if len(rep.Totals.LockedOut) != 1 || rep.Totals.LockedOut[0] != s.Addr {
				t.Errorf("locked out %v, want the flooding phone", rep.Totals.LockedOut)
			}
		})
	}
}
