package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// sipFrame is an Ethernet frame carrying a SIP OPTIONS over UDP from src to
// 192.0.2.10.
func sipFrame(t *testing.T, src string) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP("192.0.2.10")}
	udp := &layers.UDP{SrcPort: 5060, DstPort: 5060}
	udp.SetNetworkLayerForChecksum(ip)
	payload := gopacket.Payload("OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n")
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, payload); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeCapture writes frames as a pcap of link type link and returns its
// path and its bytes.
func writeCapture(t *testing.T, name string, link layers.LinkType, frames ...[]byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, link); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, f := range frames {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: at.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}, f); err != nil {
			t.Fatal(err)
		}
	}
	return writeFile(t, name, b.Bytes()), b.Bytes()
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type replayJSON struct {
	Frames   int      `json:"frames"`
	Packets  int      `json:"packets"`
	Dropped  int      `json:"dropped"`
	Warnings []string `json:"warnings"`
	Complete bool     `json:"complete"`
	Files    []string `json:"files"`
}

func runReplayJSON(t *testing.T, args ...string) (int, replayJSON, string) {
	t.Helper()
	code, out, errs := run(t, append([]string{"replay", "-c", lab, "--local", "192.0.2.10", "--json"}, args...)...)
	var rep replayJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("exit %d: no JSON report (%v): %q, stderr %s", code, err, out, errs)
	}
	return code, rep, errs
}

// TestReplayBadInput: every kind of bad input gives a clear warning naming
// the file (and the packet, past the file header), what was read before is
// still reported, and the exit status is 1 when the report is incomplete.
func TestReplayBadInput(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "")
	f1, f2, f3 := sipFrame(t, "203.0.113.11"), sipFrame(t, "203.0.113.12"), sipFrame(t, "203.0.113.13")
	good, goodBytes := writeCapture(t, "good.pcap", layers.LinkTypeEthernet, f1, f2, f3)

	// The third record cut in its middle.
	truncated := writeFile(t, "truncated.pcap", goodBytes[:len(goodBytes)-len(f3)/2])
	// A record claiming more bytes than any capture holds.
	corruptRec := append([]byte(nil), goodBytes...)
	binary.LittleEndian.PutUint32(corruptRec[24+16+len(f1)+8:], 1<<30)
	corruptRecord := writeFile(t, "corrupt-record.pcap", corruptRec)
	// Packet 2's IPv4 header claims a header length of 8 bytes.
	bad := append([]byte(nil), f2...)
	bad[14] = 0x42
	corruptPacket, _ := writeCapture(t, "corrupt-packet.pcap", layers.LinkTypeEthernet, f1, bad, f3)
	// Link type 147 (USER0) is nothing the decoder knows.
	userLink, _ := writeCapture(t, "user0.pcap", layers.LinkType(147), f1)
	notCapture := writeFile(t, "notes.txt", []byte("REGISTER sip:pbx.example-secret.net SIP/2.0\r\n\r\n"))
	empty := writeFile(t, "empty.pcap", nil)

	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		packets int      // packets to the host still reported
		warn    []string // in the warnings and on stderr
	}{
		{"good", []string{good}, exitOK, 3, nil},
		{"not a capture", []string{notCapture}, exitFailure, 0, []string{"notes.txt: not a pcap or pcapng capture"}},
		{"empty file", []string{empty}, exitFailure, 0, []string{"empty.pcap:"}},
		{"truncated", []string{truncated}, exitFailure, 2, []string{"truncated.pcap: packet 3: truncated record"}},
		{"corrupt record", []string{corruptRecord}, exitFailure, 1, []string{"corrupt-record.pcap: packet 2:"}},
		{"unknown link type", []string{userLink}, exitFailure, 0, []string{"user0.pcap: unsupported link type"}},
		{"corrupt packet", []string{corruptPacket}, exitFailure, 2, []string{"corrupt-packet.pcap: packet 2:", "(skipped)"}},
		{"no packet to a local address", []string{"--local", "192.0.2.99", good}, exitFailure, 0, []string{"no packet to a local address (192.0.2.99)"}},
		{"missing file among good ones", []string{good, "/nonexistent/x.pcap"}, exitFailure, 3, []string{"/nonexistent/x.pcap: no such file or directory"}},
		{"bad file among good ones", []string{truncated, good}, exitFailure, 5, []string{"truncated.pcap: packet 3: truncated record"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, rep, errs := runReplayJSON(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.code, errs)
			}
			if rep.Packets != tc.packets {
				t.Errorf("%d packets reported, want %d (warnings %q)", rep.Packets, tc.packets, rep.Warnings)
			}
			if rep.Complete != (tc.code == exitOK) {
				t.Errorf("complete = %v with exit %d", rep.Complete, code)
			}
			all := strings.Join(rep.Warnings, "\n")
			for _, w := range tc.warn {
				if !strings.Contains(all, w) {
					t.Errorf("warnings %q lack %q", rep.Warnings, w)
				}
				if !strings.Contains(errs, "warning: ") || !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
			if tc.code != exitOK && !strings.Contains(errs, "the report is incomplete") {
				t.Errorf("stderr does not say the report is incomplete: %s", errs)
			}
			if tc.code == exitOK && len(rep.Warnings) != 0 {
				t.Errorf("warnings on a good capture: %q", rep.Warnings)
			}
		})
	}

	// The human report is printed too, before the exit status says it is
	// incomplete.
	code, out, errs := run(t, "replay", "-c", lab, "--local", "192.0.2.10", truncated)
	if code != exitFailure || !strings.Contains(out, "packets to the host: 2") || !strings.Contains(errs, "truncated.pcap: packet 3") {
		t.Errorf("human report: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// Usage errors exit 2.
	for _, args := range [][]string{
		{"replay", "-c", lab, good},
		{"replay", "-c", lab, "--local", "not-an-address", good},
		{"replay", "-c", lab, "--local", "192.0.2.10"},
		{"replay", "-c", lab, "--local", "192.0.2.10", "--backend", "pf", good},
	} {
		if code, _, errs := run(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errs)
		}
	}
}
