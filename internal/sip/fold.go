package sip

import "bytes"

// The helpers here compare ASCII letters case-insensitively and every other
// byte exactly; they accept string or []byte on either side and never
// allocate.

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// EqualFold reports whether a and b are equal, ignoring ASCII case.
func EqualFold[A, B ~string | ~[]byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] && lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// HasPrefixFold reports whether s begins with prefix, ignoring ASCII case.
func HasPrefixFold[A, B ~string | ~[]byte](s A, prefix B) bool {
	return len(s) >= len(prefix) && EqualFold(s[:len(prefix)], prefix)
}

// HasSuffixFold reports whether s ends with suffix, ignoring ASCII case.
func HasSuffixFold[A, B ~string | ~[]byte](s A, suffix B) bool {
	return len(s) >= len(suffix) && EqualFold(s[len(s)-len(suffix):], suffix)
}

// IndexFold returns the index of the first occurrence of needle in hay,
// ignoring ASCII case, or -1. An empty needle is found at 0.
func IndexFold[A, B ~string | ~[]byte](hay A, needle B) int {
	n := len(needle)
	if n == 0 {
		return 0
	}
	first := lower(needle[0])
	for i := 0; i+n <= len(hay); i++ {
		if lower(hay[i]) != first {
			continue
		}
		if EqualFold(hay[i+1:i+n], needle[1:]) {
			return i
		}
	}
	return -1
}

// ContainsFold reports whether needle occurs in hay, ignoring ASCII case.
func ContainsFold[A, B ~string | ~[]byte](hay A, needle B) bool {
	return IndexFold(hay, needle) >= 0
}

// AppendUnfolded appends v to dst with every line fold (optional spaces or
// tabs, a line end, then spaces or tabs) replaced by a single space, as RFC
// 3261 §7.3.1 allows. With enough capacity in dst it does not allocate.
func AppendUnfolded(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\r' && c != '\n' {
			dst = append(dst, c)
			continue
		}
		// Drop whitespace already copied before the line end.
		for len(dst) > 0 && isWS(dst[len(dst)-1]) {
			dst = dst[:len(dst)-1]
		}
		for i+1 < len(v) && isLWS(v[i+1]) {
			i++
		}
		dst = append(dst, ' ')
	}
	return dst
}

// URIHost returns the host part of a SIP or SIPS URI, or of a header value
// holding one (name-addr with <>, or addr-spec): the text after the
// userinfo's '@' up to the port, parameters or headers. IPv6 references
// keep their brackets. It returns nil when there is no such URI.
func URIHost(v []byte) []byte {
	if i := IndexFold(v, "<"); i >= 0 {
		v = v[i+1:]
		if j := IndexFold(v, ">"); j >= 0 {
			v = v[:j]
		}
	}
	v = trimLWS(v)
	switch {
	case HasPrefixFold(v, "sip:"):
		v = v[4:]
	case HasPrefixFold(v, "sips:"):
		v = v[5:]
	default:
		return nil
	}
	// '@' occurs unescaped only between userinfo and host (parameters and
	// headers cannot hold it), so the host follows the last '@' before
	// the headers.
	if i := bytes.IndexByte(v, '?'); i >= 0 {
		v = v[:i]
	}
	if i := bytes.LastIndexByte(v, '@'); i >= 0 {
		v = v[i+1:]
	}
	if len(v) > 0 && v[0] == '[' {
		if i := bytes.IndexByte(v, ']'); i >= 0 {
			return v[:i+1]
		}
		return nil
	}
	for i, c := range v {
		if c == ':' || c == ';' || isLWS(c) {
			return v[:i]
		}
	}
	return v
}
