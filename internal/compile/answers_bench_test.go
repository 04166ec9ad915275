package compile_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/netns"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// BenchmarkAnswerCost measures what counting answers costs the host per
// packet it sends: two server namespaces, one loaded with
// testdata/policies/answers.yaml and one with the same policy without
// sip.answers (the anchor), send SIP answers from port 5060 to a client,
// in turns of 1,000, each send a sendmsg that runs the OUTPUT hook. It
// reports the nanoseconds per answer with and without the counting and
// their ratio, for a 200 OK (not counted: every rule is passed) and a 401
// (counted: the per-address bucket is updated, and the address banned once
// it is over). Run it with
//
//	SIPWALL_REQUIRE_ROOT=1 go test -run '^$' -bench AnswerCost -benchtime 20x ./internal/compile
func BenchmarkAnswerCost(b *testing.B) {
	nstest.RequireRoot(b, "iptables-restore", "ip6tables-restore", "ipset", "nft")
	with, err := os.ReadFile("testdata/policies/answers.yaml")
	if err != nil {
		b.Fatal(err)
	}
	start := strings.Index(string(with), "  answers:")
	end := strings.Index(string(with), "spoofing:")
	without := filepath.Join(b.TempDir(), "without.yaml")
	if err := os.WriteFile(without, []byte(string(with[:start])+string(with[end:])), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, be := range []backend.Name{backend.IPTables, backend.NFTables} {
		for _, status := range []string{"200 OK", "401 Unauthorized"} {
			b.Run(string(be)+"/"+strings.Fields(status)[0], func(b *testing.B) {
				var conns [2]*net.UDPConn
				for i, pol := range []string{without, "testdata/policies/answers.yaml"} {
					l := newLabNet(b)
					_, files := renderCase(b, goldenCase{Policy: pol, Backend: be})
					load(b, l.srv, files)
					// The client drains what it is sent.
					err := netns.Do(l.inet, func() error {
						c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("203.0.113.20"), Port: 5070})
						if err != nil {
							return err
						}
						c.SetReadBuffer(8 << 20)
						b.Cleanup(func() { c.Close() })
						go func() {
							buf := make([]byte, 2048)
							for {
								if _, err := c.Read(buf); err != nil {
									return
								}
							}
						}()
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
					conns[i] = l.udp4
				}
				msg := []byte(sipAnswer(status))
				to := &net.UDPAddr{IP: net.ParseIP("203.0.113.20"), Port: 5070}
				var took [2]time.Duration
				const turn = 1000
				b.ResetTimer()
				for n := 0; n < b.N; n++ {
					for k := range conns {
						// Each goes first every other turn.
						i := (k + n) % 2
						c := conns[i]
						t0 := time.Now()
						for j := 0; j < turn; j++ {
							if _, err := c.WriteToUDP(msg, to); err != nil {
								b.Fatal(err)
							}
						}
						took[i] += time.Since(t0)
					}
				}
				b.StopTimer()
				per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*turn) }
				b.ReportMetric(per(took[0]), "ns/answer-without")
				b.ReportMetric(per(took[1]), "ns/answer-with")
				b.ReportMetric(per(took[1])/per(took[0]), "ratio")
			})
		}
	}
}
