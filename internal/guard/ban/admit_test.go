package ban

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/netns/nstest"
)

// TestAdmitWithLifetimeAndWhy writes an admission the way guard does when
// Asterisk reports a registration (the lifetime plus the margin, a comment
// saying why) into the real kernel sets of both backends, and reads it back.
func TestAdmitWithLifetimeAndWhy(t *testing.T) {
	nstest.RequireRoot(t, "ipset", "nft")
	const why = "authenticated as 1001 (ContactStatus)"
	for _, b := range []backend.Name{backend.IPTables, backend.NFTables} {
		t.Run(string(b), func(t *testing.T) {
			ns := nstest.New(t, "admit")
			s := loadRuleset(t, ns, b)
			ctx := context.Background()
			for _, a := range []string{"198.51.100.7", "2001:db8:20::7"} {
				if err := s.AddWhy(ctx, compile.SetAdmitted, netip.MustParseAddr(a), 65*time.Minute, why); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct{ fam, addr string }{{"4", "198.51.100.7"}, {"6", "2001:db8:20::7"}} {
				var got string
				if b == backend.IPTables {
					got = nstest.Run(t, ns, "ipset", "list", "sipwall-admitted"+c.fam)
					if !strings.Contains(got, c.addr+" timeout 38") || !strings.Contains(got, `comment "`+why+`"`) {
						t.Errorf("sipwall-admitted%s:\n%s", c.fam, got)
					}
					continue
				}
				got = nstest.Run(t, ns, "nft", "list", "set", "inet", "sipwall", "admitted"+c.fam)
				if !strings.Contains(got, c.addr+" timeout 1h5m") || !strings.Contains(got, `comment "`+why+`"`) {
					t.Errorf("admitted%s:\n%s", c.fam, got)
				}
			}
		})
	}
}
