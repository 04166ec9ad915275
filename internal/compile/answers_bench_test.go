package compile_test

import (
	"net"
	"os"
	"path/filepath"
	"sort"
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
// in alternating turns of 200, each send a sendmsg that runs the OUTPUT
// hook. It reports the median nanoseconds per answer with and without the
// counting and the median of the turns' ratios, for a 200 OK (not counted: every rule is passed) and a 401
// (counted: the per-address bucket is updated, and the address banned once
// it is over), and for RTP from port 10000 (what a PBX sends most, which
// the counting passes by its source port). Run it with
//
//	SIPWALL_REQUIRE_ROOT=1 go test -run '^$' -bench AnswerCost -benchtime 500x ./internal/compile
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
		for _, status := range []string{"200 OK", "401 Unauthorized", "RTP"} {
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
					if status == "RTP" {
						err := netns.Do(l.srv, func() (err error) {
							conns[i], err = net.ListenUDP("udp4", &net.UDPAddr{Port: 10000})
							return err
						})
						if err != nil {
							b.Fatal(err)
						}
						b.Cleanup(func() { conns[i].Close() })
					}
				}
				msg := []byte(sipAnswer(status))
				if status == "RTP" {
					msg = make([]byte, 172) // a G.711 20 ms RTP packet
				}
				to := &net.UDPAddr{IP: net.ParseIP("203.0.113.20"), Port: 5070}
				// Short turns, alternating, each going first every other
				// turn; the medians of the turns shrug off the moments the
				// machine is busy with something else.
				const turn = 200
				var took [2][]time.Duration
				var ratios []float64
				b.ResetTimer()
				for n := 0; n < b.N; n++ {
					var d [2]time.Duration
					for k := range conns {
						i := (k + n) % 2
						t0 := time.Now()
						for j := 0; j < turn; j++ {
							if _, err := conns[i].WriteToUDP(msg, to); err != nil {
								b.Fatal(err)
							}
						}
						d[i] = time.Since(t0)
						took[i] = append(took[i], d[i])
					}
					ratios = append(ratios, float64(d[1])/float64(d[0]))
				}
				b.StopTimer()
				per := func(ds []time.Duration) float64 {
					sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
					return float64(ds[len(ds)/2].Nanoseconds()) / turn
				}
				sort.Float64s(ratios)
				b.ReportMetric(per(took[0]), "ns/answer-without")
				b.ReportMetric(per(took[1]), "ns/answer-with")
				b.ReportMetric(ratios[len(ratios)/2], "ratio")
			})
		}
	}
}
