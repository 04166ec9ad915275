// Package nflog receives packets that the kernel's firewall logs to a
// netfilter log group (nftables' `log group N`, iptables' NFLOG target),
// over a NETLINK_NETFILTER socket (subsystem NFNL_SUBSYS_ULOG).
//
// The Go libraries for this (go-nflog) are not available to this project,
// so this is the small part sipwall needs, on github.com/mdlayher/netlink:
// the socket and the configuration request (bind the group, copy whole
// packets) go through netlink.Conn; packets are then read straight from the
// socket into one buffer owned by the Receiver and parsed in place, so that
// receiving does not allocate per packet.
package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netlink constants from linux/netfilter/nfnetlink_log.h and
// linux/netfilter/nfnetlink.h.
const (
	subsysULOG = 4 // NFNL_SUBSYS_ULOG

	msgPacket = 0 // NFULNL_MSG_PACKET
	msgConfig = 1 // NFULNL_MSG_CONFIG

	cfgCmd     = 1 // NFULA_CFG_CMD
	cfgMode    = 2 // NFULA_CFG_MODE
	cfgNLBufSz = 3 // NFULA_CFG_NLBUFSIZ
	cfgTimeout = 4 // NFULA_CFG_TIMEOUT
	cfgQThresh = 5 // NFULA_CFG_QTHRESH

	cmdBind = 1 // NFULNL_CFG_CMD_BIND

	copyPacket = 2 // NFULNL_COPY_PACKET

	attrPacketHdr = 1  // NFULA_PACKET_HDR
	attrMark      = 2  // NFULA_MARK
	attrIfInDev   = 4  // NFULA_IFINDEX_INDEV
	attrPayload   = 9  // NFULA_PAYLOAD
	attrPrefix    = 10 // NFULA_PREFIX

	nlmsgDone   = 3 // NLMSG_DONE
	nlmsgError  = 2 // NLMSG_ERROR
	nlaTypeMask = 0x3fff
)

// Packet is one logged packet. Its byte slices point into the Receiver's
// buffer and are valid only during the callback.
type Packet struct {
	Family     uint8  // unix.AF_INET or unix.AF_INET6
	HWProtocol uint16 // EtherType of the packet
	Hook       uint8  // netfilter hook the packet was logged at
	Mark       uint32
	InDev      uint32 // input interface index, 0 when unknown
	Prefix     []byte // the rule's log prefix, without the trailing NUL
	Payload    []byte // the packet from its network header on
}

// Options configure a Receiver.
type Options struct {
	// CopyRange is how many bytes of each packet the kernel copies
	// (default 0xffff: whole packets).
	CopyRange uint32
	// ReadBuffer is the socket receive buffer in bytes (default 4 MiB):
	// packets logged while it is full are lost and counted in
	// Stats.Overruns.
	ReadBuffer int
}

// Stats counts what a Receiver read.
type Stats struct {
	Packets   uint64 // packet messages delivered
	Overruns  uint64 // times the socket buffer overflowed (packets lost)
	Malformed uint64 // messages that could not be parsed
}

// Receiver reads the packets logged to one nflog group.
type Receiver struct {
	group uint16
	c     *netlink.Conn
	rc    syscall.RawConn
	buf   []byte
	n     int
	rerr  error
	read  func(fd uintptr) bool
	pkt   Packet
	stats Stats
}

// Open binds nflog group in the calling thread's network namespace. Only
// one socket can bind a group at a time: the kernel refuses a second one
// (EPERM), and Open says that another process holds the group.
func Open(group uint16, opts Options) (*Receiver, error) {
	if opts.CopyRange == 0 {
		opts.CopyRange = 0xffff
	}
	if opts.ReadBuffer == 0 {
		opts.ReadBuffer = 4 << 20
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("nflog: %w", err)
	}
	r := &Receiver{group: group, c: c, buf: make([]byte, 256<<10)}
	if err := c.SetReadBuffer(opts.ReadBuffer); err != nil {
		c.Close()
		return nil, fmt.Errorf("nflog: receive buffer: %w", err)
	}
	// One request binds the group and sets the copy mode, so no packet
	// can arrive between the two (it would confuse the acknowledgement).
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Bytes(cfgCmd, []byte{cmdBind})
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, opts.CopyRange)
	mode[4] = copyPacket
	ae.Bytes(cfgMode, mode)
	ae.Uint32(cfgQThresh, 1) // deliver each packet at once
	ae.Uint32(cfgTimeout, 0)
	ae.Uint32(cfgNLBufSz, 64<<10)
	attrs, err := ae.Encode()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("nflog: %w", err)
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(subsysULOG<<8 | msgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(nfgenmsg(unix.AF_UNSPEC, group), attrs...),
	}
	if _, err := c.Execute(req); err != nil {
		c.Close()
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("nflog: group %d is bound by another process (is another sipwall guard running?): %w", group, err)
		}
		return nil, fmt.Errorf("nflog: bind group %d: %w", group, err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("nflog: %w", err)
	}
	r.rc = rc
	r.read = func(fd uintptr) bool {
		r.n, r.rerr = unix.Read(int(fd), r.buf) // Recvfrom would allocate the sender address
		return r.rerr != unix.EAGAIN && r.rerr != unix.EWOULDBLOCK
	}
	return r, nil
}

func nfgenmsg(family uint8, group uint16) []byte {
	b := []byte{family, 0, 0, 0} // NFNETLINK_V0
	binary.BigEndian.PutUint16(b[2:], group)
	return b
}

// SetReadDeadline makes Receive return an error wrapping
// os.ErrDeadlineExceeded at t.
func (r *Receiver) SetReadDeadline(t time.Time) error { return r.c.SetReadDeadline(t) }

// Stats returns the counters.
func (r *Receiver) Stats() Stats { return r.stats }

// Close closes the socket; the kernel unbinds the group.
func (r *Receiver) Close() error { return r.c.Close() }

// Receive waits for the next datagram from the kernel and calls fn for
// every packet in it. A socket overrun (ENOBUFS) is counted and is not an
// error; Receive then returns without calling fn.
func (r *Receiver) Receive(fn func(p *Packet)) error {
	if err := r.rc.Read(r.read); err != nil {
		return fmt.Errorf("nflog: %w", err)
	}
	if r.rerr != nil {
		if r.rerr == unix.ENOBUFS {
			r.stats.Overruns++
			return nil
		}
		return fmt.Errorf("nflog: receive: %w", r.rerr)
	}
	b := r.buf[:r.n]
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			r.stats.Malformed++
			return nil
		}
		msg := b[unix.NLMSG_HDRLEN:l]
		if next := nlAlign(l); next < len(b) {
			b = b[next:]
		} else {
			b = nil
		}
		switch {
		case typ == nlmsgDone || typ == nlmsgError:
			continue
		case typ != subsysULOG<<8|msgPacket:
			continue
		}
		if !r.parse(msg) {
			r.stats.Malformed++
			continue
		}
		r.stats.Packets++
		fn(&r.pkt)
	}
	return nil
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// parse reads one NFULNL_MSG_PACKET body into r.pkt.
func (r *Receiver) parse(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	p := &r.pkt
	*p = Packet{Family: b[0]}
	b = b[4:]
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return false
		}
		v := b[4:l]
		switch typ {
		case attrPacketHdr:
			if len(v) >= 3 {
				p.HWProtocol = binary.BigEndian.Uint16(v)
				p.Hook = v[2]
			}
		case attrMark:
			if len(v) >= 4 {
				p.Mark = binary.BigEndian.Uint32(v)
			}
		case attrIfInDev:
			if len(v) >= 4 {
				p.InDev = binary.BigEndian.Uint32(v)
			}
		case attrPayload:
			p.Payload = v
		case attrPrefix:
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			p.Prefix = v
		}
		if a := nlAlign(l); a < len(b) {
			b = b[a:]
		} else {
			b = nil
		}
	}
	return p.Payload != nil
}
