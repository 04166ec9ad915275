package engine

import (
	"math/rand/v2"
	"testing"
)

// TestFlowTable checks the table against a map under random puts, deletes
// and sweeps, with keys drawn from a small space so that runs collide.
func TestFlowTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ft := newFlowTable(4)
	ref := map[flowKey]int64{}
	key := func() flowKey {
		var k flowKey
		k.src[15] = byte(rng.IntN(8))
		k.dst[3] = byte(rng.IntN(8))
		k.sp = uint16(rng.IntN(4))
		k.proto = 17
		return k
	}
	for i := 0; i < 200000; i++ {
		k := key()
		switch rng.IntN(10) {
		case 0, 1, 2, 3:
			v := rng.Int64N(1000)
			ft.put(k, v)
			ref[k] = v
		case 4, 5, 6:
			ft.del(k)
			delete(ref, k)
		case 7:
			lim := rng.Int64N(1000)
			ft.deleteIf(func(v int64) bool { return v < lim })
			for rk, v := range ref {
				if v < lim {
					delete(ref, rk)
				}
			}
		default:
			v, ok := ft.get(k)
			rv, rok := ref[k]
			if ok != rok || v != rv {
				t.Fatalf("step %d: get = %d, %v; want %d, %v", i, v, ok, rv, rok)
			}
		}
		if ft.n != len(ref) {
			t.Fatalf("step %d: %d entries, want %d", i, ft.n, len(ref))
		}
	}
	for k, v := range ref {
		if got, ok := ft.get(k); !ok || got != v {
			t.Fatalf("get(%v) = %d, %v; want %d", k, got, ok, v)
		}
	}
}
