// Command sipflood measures the kernel's data path: it floods an interface
// with SIP requests from many sources, faster than hping3, by writing
// prebuilt Ethernet frames to an AF_PACKET socket in batches with sendmmsg,
// and with -sink it counts what a UDP port receives.
//
// Frames are built once: an OPTIONS from a scanner (User-Agent
// friendly-scanner, as svmap sends it) from each of -sources addresses
// (11.0.0.0/8, one after the other), to -dst port 5060, with valid IPv4
// and UDP checksums. The flood runs for -duration and prints the frames
// sent and the rate. With -once every source sends one frame and the
// flood stops: a warm-up that lets the ruleset (or sipwall guard) meet
// every source before the measurement.
//
//	sipflood -iface eth0 -dst 192.0.2.10 -dst-mac 02:00:00:00:00:10 -sources 10000 -duration 3s
//	sipflood -sink :5060 -duration 5s
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	iface := flag.String("iface", "eth0", "interface to send on")
	dst := flag.String("dst", "192.0.2.10", "server address")
	dstMAC := flag.String("dst-mac", "", "server's MAC address (required to send)")
	sources := flag.Int("sources", 10000, "distinct source addresses")
	duration := flag.Duration("duration", 3*time.Second, "how long to send (or to listen, with -sink)")
	batch := flag.Int("batch", 64, "frames per sendmmsg")
	sink := flag.String("sink", "", "count UDP datagrams received on this address instead of sending")
	once := flag.Bool("once", false, "send each source's frame once, then stop (a warm-up)")
	flag.Parse()
	var err error
	if *sink != "" {
		err = runSink(*sink, *duration)
	} else {
		err = flood(*iface, *dst, *dstMAC, *sources, *duration, *batch, *once)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sipflood:", err)
		os.Exit(1)
	}
}

func runSink(addr string, d time.Duration) error {
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.(*net.UDPConn).SetReadBuffer(4 << 20)
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n := 0
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			break
		}
		n++
	}
	fmt.Printf("received %d\n", n)
	return nil
}

func flood(iface, dst, dstMAC string, sources int, d time.Duration, batch int, once bool) error {
	if sources < 1 || sources > 1<<24 || batch < 1 || batch > 1024 {
		return fmt.Errorf("-sources must be 1..16777216 and -batch 1..1024")
	}
	daddr, err := netip.ParseAddr(dst)
	if err != nil || !daddr.Is4() {
		return fmt.Errorf("-dst %q: not an IPv4 address", dst)
	}
	dmac, err := net.ParseMAC(dstMAC)
	if err != nil || len(dmac) != 6 {
		return fmt.Errorf("-dst-mac %q: not a MAC address", dstMAC)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // send only: no protocol, nothing received
	if err != nil {
		return fmt.Errorf("AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	sll := unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: int32(ifi.Index), Halen: 6}
	copy(sll.Addr[:], dmac)

	frames := make([][]byte, sources)
	for i := range frames {
		src := [4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}
		frames[i] = frame(ifi.HardwareAddr, dmac, src, daddr.As4(), uint16(5060+i%1000))
	}
	hdrs := make([]mmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	for i := range hdrs {
		hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&sll))
		hdrs[i].hdr.Namelen = uint32(unsafe.Sizeof(sll))
		hdrs[i].hdr.Iov = &iovs[i]
		hdrs[i].hdr.Iovlen = 1
	}
	sent, next := 0, 0
	start := time.Now()
	deadline := start.Add(d)
	for time.Now().Before(deadline) && !(once && sent >= len(frames)) {
		for i := range hdrs {
			f := frames[next]
			next++
			if next == len(frames) {
				next = 0
			}
			iovs[i].Base = &f[0]
			iovs[i].SetLen(len(f))
		}
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
		if errno != 0 {
			if errno == unix.ENOBUFS || errno == unix.EAGAIN {
				continue
			}
			return fmt.Errorf("sendmmsg: %w", errno)
		}
		sent += int(n)
	}
	el := time.Since(start)
	fmt.Printf("sent %d in %.3f s: %.0f frames/s from %d sources\n", sent, el.Seconds(), float64(sent)/el.Seconds(), sources)
	return nil
}

type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// frame builds Ethernet + IPv4 + UDP + a scanner's OPTIONS.
func frame(smac, dmac net.HardwareAddr, src, dst [4]byte, sport uint16) []byte {
	ip := fmt.Sprintf("%d.%d.%d.%d", src[0], src[1], src[2], src[3])
	payload := "OPTIONS sip:100@" + fmt.Sprintf("%d.%d.%d.%d", dst[0], dst[1], dst[2], dst[3]) + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + ip + ":" + fmt.Sprint(sport) + ";branch=z9hG4bK-1181138826;rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"To: \"sipvicious\"<sip:100@1.1.1.1>\r\n" +
		"From: \"sipvicious\"<sip:100@1.1.1.1>;tag=6330303030323061313363340133373133323939333136\r\n" +
		"User-Agent: friendly-scanner\r\n" +
		"Call-ID: 780660590264970704527243\r\n" +
		"Contact: sip:100@" + ip + ":" + fmt.Sprint(sport) + "\r\n" +
		"CSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
	b := make([]byte, 14+20+8+len(payload))
	copy(b[0:6], dmac)
	copy(b[6:12], smac)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	h := b[14:34]
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+8+len(payload)))
	h[8] = 64
	h[9] = 17
	copy(h[12:16], src[:])
	copy(h[16:20], dst[:])
	binary.BigEndian.PutUint16(h[10:], ^sum(h, 0))
	u := b[34:42]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], 5060)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(b[42:], payload)
	// UDP checksum over the pseudo-header.
	var ph [12]byte
	copy(ph[0:4], src[:])
	copy(ph[4:8], dst[:])
	ph[9] = 17
	binary.BigEndian.PutUint16(ph[10:], uint16(8+len(payload)))
	c := ^sum(b[34:], sum(ph[:], 0))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return b
}

// sum is the ones' complement sum of b added to s (folded).
func sum(b []byte, s uint16) uint16 {
	acc := uint32(s)
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}
