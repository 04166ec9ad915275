package replay_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/netns/nstest"
	"github.com/sipwall/sipwall/internal/replay"
)

// The answers capture: a password guesser answered 401 at every REGISTER,
// an enumerator answered 404 over TCP, a phone that registers (401, then
// 200) and once types a wrong password.
var (
	aGuesser    = netip.MustParseAddr("203.0.113.30")
	aEnumerator = netip.MustParseAddr("203.0.113.31")
	aPhone      = netip.MustParseAddr("198.51.100.21")
)

// answersPolicy is the lab in open mode with answer bans: 10 auth failures
// or 10 not-found answers per minute per remote address.
const answersPolicy = `interfaces: {public: [eth+]}
ssh: {ports: [2222]}
sip:
  mode: open
  answers:
    auth_failures: {count: 10, per: 1m}
    not_found: {count: 10, per: 1m}
    ban_for: 1h
spoofing:
  exempt: [192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32]
`

func sipReq(method, ext string, from netip.Addr, port uint16, n int) string {
	return fmt.Sprintf("%s sip:%s@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%d\r\nFrom: <sip:%s@192.0.2.10>;tag=%d\r\nTo: <sip:%s@192.0.2.10>\r\nCall-ID: %d@%s\r\nCSeq: %d %s\r\nUser-Agent: Z 5.4.12 v2.10.20.4\r\nContent-Length: 0\r\n\r\n",
		method, ext, from, port, n, ext, n, ext, n, from, n, method)
}

func sipResp(status, method string, from netip.Addr, port uint16, n int) string {
	return fmt.Sprintf("SIP/2.0 %s\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%d\r\nFrom: <sip:1001@192.0.2.10>;tag=%d\r\nTo: <sip:1001@192.0.2.10>;tag=s%d\r\nCall-ID: %d@%s\r\nCSeq: %d %s\r\nServer: kamailio (5.6.3 (x86_64/linux))\r\nContent-Length: 0\r\n\r\n",
		status, from, port, n, n, n, n, from, n, method)
}

// answersCapture writes the capture to a file and returns its path.
func answersCapture(t *testing.T) string {
	c := newCapWriter(t)
	ms := time.Millisecond
	// The guesser: 20 REGISTERs 100 ms apart, each answered 401 1 ms later.
	for i := 0; i < 20; i++ {
		at := time.Duration(i) * 100 * ms
		c.udp(at, aGuesser, gServer, 5070, 5060, sipReq("REGISTER", fmt.Sprint(1000+i), aGuesser, 5070, i))
		c.udp(at+ms, gServer, aGuesser, 5060, 5070, sipResp("401 Unauthorized", "REGISTER", aGuesser, 5070, i))
	}
	// The phone: four registrations (REGISTER, 401, REGISTER with
	// credentials, 200), the third with a wrong password first (401 twice).
	n := 100
	for i := 0; i < 4; i++ {
		at := 50*ms + time.Duration(i)*500*ms
		c.udp(at, aPhone, gServer, 5062, 5060, sipReq("REGISTER", "1001", aPhone, 5062, n))
		c.udp(at+ms, gServer, aPhone, 5060, 5062, sipResp("401 Unauthorized", "REGISTER", aPhone, 5062, n))
		n++
		if i == 2 {
			c.udp(at+20*ms, aPhone, gServer, 5062, 5060, sipReq("REGISTER", "1001", aPhone, 5062, n))
			c.udp(at+21*ms, gServer, aPhone, 5060, 5062, sipResp("401 Unauthorized", "REGISTER", aPhone, 5062, n))
			n++
		}
		c.udp(at+40*ms, aPhone, gServer, 5062, 5060, sipReq("REGISTER", "1001", aPhone, 5062, n))
		c.udp(at+41*ms, gServer, aPhone, 5060, 5062, sipResp("200 OK", "REGISTER", aPhone, 5062, n))
		n++
	}
	// The enumerator, over TCP: an OPTIONS per extension, each answered
	// 404 Not Found by the server on the same connection.
	f := c.connect(30*ms, aEnumerator, 40000, 5060, 1000)
	for i := 0; i < 15; i++ {
		at := 40*ms + time.Duration(i)*100*ms
		f.send(at, []byte(sipReq("OPTIONS", fmt.Sprint(2000+i), aEnumerator, 40000, i)))
		data := []byte(sipResp("404 Not Found", "OPTIONS", aEnumerator, 40000, i))
		c.write(at+ms, gServer, aEnumerator, &layers.TCP{SrcPort: 5060, DstPort: 40000, Seq: f.sseq, Ack: f.cseq, ACK: true, PSH: true, Window: 502}, data)
		f.sseq += uint32(len(data))
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "answers.pcap")
	if err := os.WriteFile(path, c.buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAnswersReport: replay bans the guesser at its 11th answer 401 and
// the enumerator at its 11th 404, and never the phone.
func TestAnswersReport(t *testing.T) {
	path := answersCapture(t)
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			pol := filepath.Join(t.TempDir(), "answers.yaml")
			if err := os.WriteFile(pol, []byte(answersPolicy), 0o644); err != nil {
				t.Fatal(err)
			}
			p, prog := policyProgram(t, pol, b)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := replay.Run(prog, []replay.Input{{Name: "answers.pcap", R: f}}, replay.Options{Local: labLocal, Hostnames: p.SIP.Hostnames})
			if err != nil {
				t.Fatal(err)
			}
			checkAnswersReport(t, rep)
		})
	}
}

func checkAnswersReport(t *testing.T, rep *replay.Report) {
	t.Helper()
	if rep.Totals.SourcesBanned != 2 {
		t.Errorf("%d sources banned, want 2 (the guesser and the enumerator)", rep.Totals.SourcesBanned)
	}
	for _, c := range []struct {
		addr    netip.Addr
		banned  bool
		answers int
	}{{aGuesser, true, 11}, {aEnumerator, true, 11}, {aPhone, false, 5}} {
		s := rep.SourceOf(c.addr)
		if s == nil {
			t.Errorf("%s is not in the report", c.addr)
			continue
		}
		at, banned := s.InList(replay.ListAnswered)
		if banned != c.banned {
			t.Errorf("%s in %s: %v, want %v", c.addr, replay.ListAnswered, banned, c.banned)
		}
		if s.FailureAnswers != c.answers {
			t.Errorf("%s was sent %d failure answers, want %d", c.addr, s.FailureAnswers, c.answers)
		}
		if banned {
			t.Logf("%s banned at %s after %d failure answers; %d of its %d packets dropped", c.addr, at.Format("15:04:05.000"), s.FailureAnswers, s.Dropped, s.Packets)
			if s.Dropped == 0 {
				t.Errorf("%s was banned but none of its packets was dropped", c.addr)
			}
		} else if s.Dropped != 0 {
			t.Errorf("%s: %d packets dropped, want none", c.addr, s.Dropped)
		}
	}
}

// TestKernelAnswers is the differential test on the answers capture: the
// kernel's counters equal the engine's on both backends, and the kernel's
// answered set holds exactly the addresses the report bans.
func TestKernelAnswers(t *testing.T) {
	nstest.RequireRoot(t, "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "ipset", "nft")
	path := answersCapture(t)
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			pol := filepath.Join(t.TempDir(), "answers.yaml")
			if err := os.WriteFile(pol, []byte(answersPolicy), 0o644); err != nil {
				t.Fatal(err)
			}
			differentialWith(t, b, pol, path, func(l *kernelLab, rep *replay.Report) {
				checkAnswersReport(t, rep)
				var out string
				if b == backend.IPTables {
					out = nstest.Run(t, l.srv, "ipset", "list", "sipwall-answered4")
				} else {
					out = nstest.Run(t, l.srv, "nft", "list", "set", "inet", "sipwall", "answered4")
				}
				for _, a := range []netip.Addr{aGuesser, aEnumerator, aPhone} {
					inKernel := strings.Contains(out, a.String())
					_, inReport := rep.SourceOf(a).InList(replay.ListAnswered)
					if inKernel != inReport {
						t.Errorf("%s in the answered set: kernel %v, report %v\n%s", a, inKernel, inReport, out)
					}
				}
			})
		})
	}
}
