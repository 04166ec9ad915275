package packet

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var genSeeds = flag.Bool("gen-seeds", false, "rewrite testdata/fuzz/FuzzDecode seeds from the capture corpus")

// seedFrames are the frames committed as FuzzDecode seeds: a few packets of
// every kind in the corpus plus hand-made frames for the other link types.
func seedFrames(t testing.TB) map[string]frame {
	seeds := map[string]frame{
		"sll-ipv4-udp":   {LinkLinuxSLL, sll(4, EtherTypeIPv4, ipv4(ProtoUDP, v4opts{ttl: 64}, udp(5062, 5060, sipOptions)))},
		"sll2-ipv6-udp":  {LinkLinuxSLL2, sll2(0, 2, EtherTypeIPv6, ipv6(ProtoUDP, udp(5062, 5060, sipOptions)))},
		"raw-ipv6-ext":   {LinkRaw, ipv6(ProtoHopOpts, cat(ext6(ProtoRouting, 1), ext6(ProtoFragment, 1), frag6(ProtoTCP, 0, true, 5), tcp(1, 5060, TCPSyn, nil, nil)))},
		"vlan-ipv4-frag": {LinkEthernet, ether(EtherTypeVLAN, cat(vlan(10, EtherTypeIPv4), ipv4(ProtoUDP, v4opts{flagsFrag: 0x2000}, udp(5062, 5060, sipOptions)[:24])))},
		"null-ipv4-icmp": {LinkNull, cat([]byte{2, 0, 0, 0}, ipv4(ProtoICMP, v4opts{}, []byte{8, 0, 0, 0, 1, 2, 3, 4}))},
		"ipv4-options":   {LinkIPv4, ipv4(ProtoTCP, v4opts{options: []byte{1, 1, 1, 0}}, tcp(5060, 1, TCPAck, []byte{1, 1, 1, 0}, []byte("SIP/2.0 200 OK\r\n\r\n")))},
	}
	pick := map[string][]int{
		"svmap.pcap":             {1, 2},
		"legit-tcp.pcap":         {1, 4, 16},
		"portscan-then-sip.pcap": {5},
		"synflood-ssh.pcap":      {1, 2},
	}
	for name, idx := range pick {
		frames := readCorpus(t, name)
		for _, i := range idx {
			seeds[fmt.Sprintf("%s-%d", name[:len(name)-len(".pcap")], i)] = frames[i-1]
		}
	}
	return seeds
}

func TestGenerateFuzzSeeds(t *testing.T) {
	if !*genSeeds {
		t.Skip("run with -gen-seeds to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, fr := range seedFrames(t) {
		body := fmt.Sprintf("go test fuzz v1\nuint16(%d)\n[]byte(%q)\n", fr.link, fr.data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(uint16(LinkEthernet), ether(EtherTypeIPv4, ipv4(ProtoUDP, v4opts{ttl: 64}, udp(5062, 5060, sipOptions))))
	f.Add(uint16(LinkRaw), ipv6(ProtoFragment, frag6(ProtoUDP, 8, false, 1)))
	f.Fuzz(func(t *testing.T, link uint16, data []byte) {
		var p Packet
		err := Decode(LinkType(link), data, &p)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v has no known kind", err)
			}
			return
		}
		if len(p.Payload) > len(data) {
			t.Fatalf("payload longer than frame")
		}
		switch p.IPVersion {
		case 0:
			if p.Layers.Has(LayerTCP) || p.Layers.Has(LayerUDP) {
				t.Fatal("transport without IP")
			}
		case 4:
			if p.IHL < 20 || p.L3Len < int(p.IHL) || !p.Src.Is4() {
				t.Fatalf("bad IPv4 fields: IHL %d L3Len %d", p.IHL, p.L3Len)
			}
		case 6:
			if p.L3Len < 40 || !p.Src.Is6() {
				t.Fatalf("bad IPv6 fields: L3Len %d", p.L3Len)
			}
		default:
			t.Fatalf("IPVersion %d", p.IPVersion)
		}
		if p.Layers.Has(LayerTCP) && p.TCPDataOffset < 20 {
			t.Fatalf("TCP data offset %d", p.TCPDataOffset)
		}
		if p.IsFirstFragment() && !p.IsFragment() {
			t.Fatal("first fragment that is no fragment")
		}
	})
}
