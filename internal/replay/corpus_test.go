package replay_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipwall/sipwall/internal/backend"
	"github.com/sipwall/sipwall/internal/compile"
	"github.com/sipwall/sipwall/internal/engine"
	"github.com/sipwall/sipwall/internal/policy"
	"github.com/sipwall/sipwall/internal/replay"
)

// corpusDir holds the public captures of the lab (shared/corpus/pcap).
const corpusDir = "../../../shared/corpus/pcap"

var labLocal = []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8:10::10")}

// labProgram compiles examples/lab.yaml for backend b.
func labProgram(t testing.TB, b backend.Name) (*policy.Policy, *engine.Program) {
	t.Helper()
	return policyProgram(t, "../../examples/lab.yaml", b)
}

// policyProgram compiles the policy in file for backend b.
func policyProgram(t testing.TB, file string, b backend.Name) (*policy.Policy, *engine.Program) {
	t.Helper()
	p, err := policy.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := compile.Compile(p, compile.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := engine.Compile(rs, backend.Name(b))
	if err != nil {
		t.Fatal(err)
	}
	return p, prog
}

// labOptions are the replay options the CLI derives from the lab policy.
func labOptions(p *policy.Policy, b backend.Name) replay.Options {
	o := replay.Options{Local: labLocal, Hostnames: p.SIP.Hostnames}
	if b == backend.NFTables {
		o.Guard = replay.GuardFromPolicy(p)
	}
	return o
}

func corpusFile(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(corpusDir, name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("corpus capture %s not available: %v", name, err)
	}
	return path
}

func replayFiles(t testing.TB, prog *engine.Program, opt replay.Options, names ...string) *replay.Report {
	t.Helper()
	var ins []replay.Input
	for _, n := range names {
		f, err := os.Open(corpusFile(t, n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		ins = append(ins, replay.Input{Name: n, R: f})
	}
	rep, err := replay.Run(prog, ins, opt)
	if err != nil {
		t.Fatalf("replay %v: %v", names, err)
	}
	return rep
}
