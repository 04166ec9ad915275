package capture

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func pcapRecords(data []byte, flat bool) ([]Record, string) {
	r, err := NewReader("x", bytes.NewReader(data))
	if err != nil {
		return nil, "open:" + err.Error()
	}
	if !flat {
		r.flat = nil
	}
	var out []Record
	for i := 0; i < 100000; i++ {
		rec, err := r.Next()
		if err != nil {
			return out, err.Error()
		}
		rec.Data = append([]byte(nil), rec.Data...)
		out = append(out, rec)
	}
	return out, ""
}

// TestFlatMatchesPcapgo: the plain pcap reader returns what pcapgo returns,
// records and errors, on the captures cut short and corrupted at random.
func TestFlatMatchesPcapgo(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap"))
	files2, _ := filepath.Glob("testdata/*.pcap")
	files = append(files, files2...)
	rng := rand.New(rand.NewSource(1))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for trial := 0; trial < 300; trial++ {
			d := append([]byte(nil), data...)
			if trial > 0 {
				d = d[:rng.Intn(len(d)+1)]
				if trial%2 == 0 && len(d) > 24 {
					for k := 0; k < 3; k++ {
						d[24+rng.Intn(len(d)-24)] = byte(rng.Intn(256))
					}
				}
			}
			a, ea := pcapRecords(d, true)
			b, eb := pcapRecords(d, false)
			if ea != eb || !reflect.DeepEqual(a, b) {
				t.Fatalf("%s trial %d: %q vs %q (%d vs %d)", f, trial, ea, eb, len(a), len(b))
			}
		}
	}
}
