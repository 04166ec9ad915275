package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipwall/sipwall/internal/packet"
)

const corpusDir = "../../../shared/corpus/pcap"

func open(t testing.TB, path string) *Reader {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(filepath.Base(path), bytes.NewReader(data))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return r
}

// readAll returns copies of every record and the final error (nil at a
// clean end).
func readAll(r *Reader) ([]Record, error) {
	var out []Record
	for rec, err := range r.Packets() {
		if err != nil {
			return out, err
		}
		rec.Data = bytes.Clone(rec.Data)
		out = append(out, rec)
	}
	return out, nil
}

var corpusCounts = map[string]int{
	"legit-tcp.pcap": 19, "legit-udp.pcap": 11, "nmap-sip.pcap": 114, "portscan-then-sip.pcap": 30,
	"register-flood.pcap": 1404, "sipsak-options.pcap": 2, "svcrack.pcap": 1210, "svmap.pcap": 2,
	"svwar.pcap": 408, "synflood-ssh.pcap": 602,
}

func TestCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap"))
	if len(files) != len(corpusCounts) {
		t.Fatalf("%d captures in %s, want %d", len(files), corpusDir, len(corpusCounts))
	}
	for _, path := range files {
		name := filepath.Base(path)
		r := open(t, path)
		if r.Format() != FormatPcap || r.LinkType() != packet.LinkEthernet {
			t.Errorf("%s: format %v link %v", name, r.Format(), r.LinkType())
		}
		recs, err := readAll(r)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if len(recs) != corpusCounts[name] || r.Count() != len(recs) {
			t.Errorf("%s: %d records (Count %d), want %d", name, len(recs), r.Count(), corpusCounts[name])
		}
		var p packet.Packet
		for i, rec := range recs {
			if rec.Number != i+1 || rec.Length != len(rec.Data) || rec.Timestamp.IsZero() {
				t.Fatalf("%s: record %d: number %d length %d/%d ts %v", name, i+1, rec.Number, rec.Length, len(rec.Data), rec.Timestamp)
			}
			if i > 0 && rec.Timestamp.Before(recs[i-1].Timestamp) {
				t.Errorf("%s: record %d goes back in time", name, i+1)
			}
			if err := packet.Decode(rec.LinkType, rec.Data, &p); err != nil {
				t.Errorf("%s: record %d: %v", name, i+1, err)
			}
		}
	}
}

func TestPcapngMatchesPcap(t *testing.T) {
	ng, err := readAll(open(t, "testdata/legit-udp.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := readAll(open(t, filepath.Join(corpusDir, "legit-udp.pcap")))
	if err != nil {
		t.Fatal(err)
	}
	if len(ng) != len(pc) || len(ng) != 11 {
		t.Fatalf("pcapng %d records, pcap %d", len(ng), len(pc))
	}
	for i := range ng {
		if !bytes.Equal(ng[i].Data, pc[i].Data) || !ng[i].Timestamp.Equal(pc[i].Timestamp) || ng[i].LinkType != pc[i].LinkType {
			t.Errorf("record %d differs: %v/%v", i+1, ng[i].Timestamp, pc[i].Timestamp)
		}
	}
	if r := open(t, "testdata/legit-udp.pcapng"); r.Format() != FormatPcapng {
		t.Errorf("format %v", r.Format())
	}
}

func TestCookedCaptures(t *testing.T) {
	for _, tc := range []struct {
		file string
		link packet.LinkType
	}{{"testdata/sipsak-sll.pcap", packet.LinkLinuxSLL}, {"testdata/sipsak-sll2.pcap", packet.LinkLinuxSLL2}} {
		r := open(t, tc.file)
		if r.LinkType() != tc.link {
			t.Errorf("%s: link %v", tc.file, r.LinkType())
		}
		recs, err := readAll(r)
		if err != nil || len(recs) != 2 {
			t.Fatalf("%s: %d records, %v", tc.file, len(recs), err)
		}
		var p packet.Packet
		for i, want := range []packet.PacketType{packet.PacketHost, packet.PacketOutgoing} {
			if err := packet.Decode(recs[i].LinkType, recs[i].Data, &p); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			if p.PktType != want || p.Protocol != packet.ProtoUDP || !bytes.HasPrefix(p.Payload, []byte("OPTIONS ")) == (i == 0) {
				t.Errorf("%s: record %d: pkttype %v proto %d payload %.10q", tc.file, i+1, p.PktType, p.Protocol, p.Payload)
			}
		}
	}
}

func TestTruncated(t *testing.T) {
	for _, src := range []string{filepath.Join(corpusDir, "svmap.pcap"), "testdata/legit-udp.pcapng"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := readAll(open(t, src))
		if err != nil {
			t.Fatal(err)
		}
		// Cut the file at every offset past its header: every complete
		// record before the cut is returned, then ErrTruncated naming the
		// next packet, or a clean end when the cut falls between records.
		for cut := 40; cut < len(data); cut++ {
			r, err := NewReader("cut"+filepath.Ext(src), bytes.NewReader(data[:cut]))
			if err != nil {
				var ce *Error
				if !errors.As(err, &ce) || !errors.Is(err, ErrTruncated) {
					t.Fatalf("%s cut at %d: NewReader = %v", src, cut, err)
				}
				continue
			}
			recs, err := readAll(r)
			for i := range recs {
				if !bytes.Equal(recs[i].Data, whole[i].Data) {
					t.Fatalf("%s cut at %d: record %d differs", src, cut, i+1)
				}
			}
			if err == nil {
				continue
			}
			var ce *Error
			if !errors.As(err, &ce) || !errors.Is(err, ErrTruncated) || ce.Packet != len(recs)+1 {
				t.Fatalf("%s cut at %d: %d records then %v", src, cut, len(recs), err)
			}
			if _, again := r.Next(); again != err {
				t.Fatalf("error not sticky: %v", again)
			}
		}
	}
	data, _ := os.ReadFile(filepath.Join(corpusDir, "svmap.pcap"))
	r, _ := NewReader("svmap.pcap", bytes.NewReader(data[:len(data)-10]))
	_, err := readAll(r)
	if err == nil || err.Error() != "svmap.pcap: packet 2: truncated record" {
		t.Errorf("error text = %v", err)
	}
}

func TestNotACapture(t *testing.T) {
	for _, in := range []string{"", "ab", "INVITE sip:x SIP/2.0\r\n\r\n", strings.Repeat("\x00", 100)} {
		_, err := NewReader("notes.txt", strings.NewReader(in))
		var ce *Error
		if !errors.As(err, &ce) || !errors.Is(err, ErrNotCapture) || ce.File != "notes.txt" || ce.Packet != 0 {
			t.Errorf("NewReader(%.10q) = %v", in, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "notes.txt: not a pcap or pcapng capture") {
			t.Errorf("error text %q", err)
		}
	}
	// A pcap magic with a cut file header.
	_, err := NewReader("short.pcap", bytes.NewReader([]byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0}))
	if !errors.Is(err, ErrTruncated) {
		t.Errorf("short header: %v", err)
	}
}

func TestUnknownLinkType(t *testing.T) {
	data, _ := os.ReadFile(filepath.Join(corpusDir, "svmap.pcap"))
	data = bytes.Clone(data)
	binary.LittleEndian.PutUint32(data[20:], 147) // LINKTYPE_USER0
	_, err := NewReader("user0.pcap", bytes.NewReader(data))
	if !errors.Is(err, ErrLinkType) || err.Error() != "user0.pcap: unsupported link type 147" {
		t.Errorf("NewReader = %v", err)
	}
	ng, _ := os.ReadFile("testdata/legit-udp.pcapng")
	ng = bytes.Clone(ng)
	// The interface description block follows the section header block.
	shbLen := binary.LittleEndian.Uint32(ng[4:])
	binary.LittleEndian.PutUint16(ng[shbLen+8:], 147)
	_, err = NewReader("user0.pcapng", bytes.NewReader(ng))
	if !errors.Is(err, ErrLinkType) {
		t.Errorf("pcapng NewReader = %v", err)
	}
}

func TestCorruptPcapngLength(t *testing.T) {
	ng, _ := os.ReadFile("testdata/legit-udp.pcapng")
	ng = bytes.Clone(ng)
	// Find the first enhanced packet block and give it a huge capture length.
	off := 0
	for off+8 <= len(ng) && binary.LittleEndian.Uint32(ng[off:]) != ngTypeEnhanced {
		off += int(binary.LittleEndian.Uint32(ng[off+4:]))
	}
	binary.LittleEndian.PutUint32(ng[off+20:], 1<<30)
	r, err := NewReader("big.pcapng", bytes.NewReader(ng))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Packet != 1 {
		t.Errorf("Next = %v", err)
	}
}

func TestNextAllocs(t *testing.T) {
	for _, path := range []string{filepath.Join(corpusDir, "register-flood.pcap"), "testdata/legit-udp.pcapng"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(path, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); err != nil { // first record sizes the buffer
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(5, func() {
			if _, err := r.Next(); err != nil && err != io.EOF {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Next allocates %v times per packet", path, allocs)
		}
	}
}

func BenchmarkReadAndDecode(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(corpusDir, "register-flood.pcap"))
	if err != nil {
		b.Fatal(err)
	}
	var p packet.Packet
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		r, err := NewReader("register-flood.pcap", bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for rec, err := range r.Packets() {
			if err != nil {
				b.Fatal(err)
			}
			_ = packet.Decode(rec.LinkType, rec.Data, &p)
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
}

func FuzzReader(f *testing.F) {
	for _, p := range []string{filepath.Join(corpusDir, "svmap.pcap"), "testdata/sipsak-sll2.pcap", "testdata/legit-udp.pcapng"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader("fuzz", bytes.NewReader(data))
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for i := 0; i < 1000; i++ {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				var ce *Error
				if !errors.As(err, &ce) || ce.Packet != i+1 {
					t.Fatalf("error %v at record %d", err, i+1)
				}
				return
			}
			if len(rec.Data) > MaxSnaplen || rec.Number != i+1 {
				t.Fatalf("record %d: %d bytes", rec.Number, len(rec.Data))
			}
		}
	})
}
