package guard

import (
	"bytes"
	"net/netip"
)

// sourceTable numbers the sources of a scan: an open-addressing hash table
// of 16-byte addresses (IPv4 as IPv4-mapped; the events package unmaps
// mapped addresses, so the mapped form means IPv4). A source costs 16 bytes
// of address and 8 to 16 bytes of slots (the table is kept at most half
// full).
type sourceTable struct {
	addrs [][16]byte
	slots []uint32 // index+1 of the source, 0 when free
	mask  uint32
}

func (t *sourceTable) len() int { return len(t.addrs) }

func (t *sourceTable) addr(i uint32) netip.Addr {
	a := netip.AddrFrom16(t.addrs[i])
	return a.Unmap()
}

// compare orders two sources as netip.Addr.Compare does: IPv4 first.
func (t *sourceTable) compare(i, j uint32) int {
	a, b := &t.addrs[i], &t.addrs[j]
	a4, b4 := isMapped(a), isMapped(b)
	switch {
	case a4 && !b4:
		return -1
	case b4 && !a4:
		return 1
	}
	return bytes.Compare(a[:], b[:])
}

func isMapped(a *[16]byte) bool {
	return a[10] == 0xff && a[11] == 0xff && a[0]|a[1]|a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9] == 0
}

func hash16(k *[16]byte) uint32 {
	lo := uint64(k[0]) | uint64(k[1])<<8 | uint64(k[2])<<16 | uint64(k[3])<<24 | uint64(k[4])<<32 | uint64(k[5])<<40 | uint64(k[6])<<48 | uint64(k[7])<<56
	hi := uint64(k[8]) | uint64(k[9])<<8 | uint64(k[10])<<16 | uint64(k[11])<<24 | uint64(k[12])<<32 | uint64(k[13])<<40 | uint64(k[14])<<48 | uint64(k[15])<<56
	h := lo*0x9e3779b97f4a7c15 ^ hi*0xc2b2ae3d27d4eb4f
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return uint32(h >> 32)
}

// index returns the number of addr, numbering it if it is new.
func (t *sourceTable) index(addr netip.Addr) uint32 {
	k := addr.As16()
	if len(t.slots) == 0 {
		t.slots = make([]uint32, 1024)
		t.mask = 1023
	}
	for i := hash16(&k) & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			t.addrs = append(t.addrs, k)
			t.slots[i] = uint32(len(t.addrs))
			if 2*len(t.addrs) > len(t.slots) {
				t.grow()
			}
			return uint32(len(t.addrs) - 1)
		}
		if t.addrs[s-1] == k {
			return s - 1
		}
	}
}

func (t *sourceTable) grow() {
	t.slots = make([]uint32, 2*len(t.slots))
	t.mask = uint32(len(t.slots) - 1)
	for n := range t.addrs {
		i := hash16(&t.addrs[n]) & t.mask
		for t.slots[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = uint32(n + 1)
	}
}
