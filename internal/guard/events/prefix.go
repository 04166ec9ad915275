package events

import (
	"bytes"
	"time"
)

// The parts of a log line Asterisk writes before the message:
//
//	[2012-02-13 17:21:54] NOTICE[1638] chan_sip.c: Registration from …
//	[2013-02-05 23:44:42] NOTICE[436][C-00000fa9] chan_sip.c: Call from …
//	[Jan 18 17:39:50] NOTICE[12049]: res_pjsip_session.c:2337 new_invite: Call from …
//	[2016-06-09 00:01:02] NOTICE [22382] manager.c: 192.0.2.1 failed …
//	Nov 4 18:30:40 host asterisk[32229]: NOTICE[32257]: chan_sip.c:23417 in handle_request_register: …
//	NOTICE[566]: chan_sip.c:28926 handle_request_register: …           (systemd journal)
//
// The message starts after the source part ("file:" or "file:line [in] func:").
// Everything before the level is written by Asterisk or syslog, so the first
// "LEVEL[digits]" in the line is Asterisk's, and the message start found from it
// cannot be moved by caller-controlled text, which only appears in the message.

// prefixWindow bounds how far into a line the level is looked for.
const prefixWindow = 256

var levels = [...][]byte{[]byte("NOTICE"), []byte("SECURITY"), []byte("WARNING"), []byte("ERROR"), []byte("VERBOSE")}

// parsePrefix returns the offset of the message in line and the timestamp.
func parsePrefix(line []byte, loc *time.Location) (msg int, ts time.Time, noYear, ok bool) {
	ts, noYear, _ = parseLeadingStamp(line, loc)
	win := line
	if len(win) > prefixWindow {
		win = win[:prefixWindow]
	}
	pos := -1
	for from := 0; from < len(win); {
		p := bytes.IndexByte(win[from:], '[')
		if p < 0 {
			break
		}
		p += from
		from = p + 1
		if q, ok := levelAt(win, p); ok {
			pos = q
			break
		}
	}
	if pos < 0 {
		return 0, ts, noYear, false
	}
	// Optional call identifier "[C-0000001d]".
	if pos < len(line) && line[pos] == '[' {
		end := bytes.IndexByte(line[pos:min(len(line), pos+40)], ']')
		if end < 0 {
			return 0, ts, noYear, false
		}
		pos += end + 1
	}
	if pos < len(line) && line[pos] == ':' {
		pos++
	}
	if pos >= len(line) || line[pos] != ' ' {
		return 0, ts, noYear, false
	}
	pos++
	// Source: "file:" optionally followed by "line func:" or "line in func:".
	c := sourceColon(line, pos)
	if c < 0 {
		return 0, ts, noYear, false
	}
	pos = c + 1
	d := pos
	for d < len(line) && d-pos < 10 && '0' <= line[d] && line[d] <= '9' {
		d++
	}
	if d > pos { // a line number: a function name follows
		if d >= len(line) || line[d] != ' ' {
			return 0, ts, noYear, false
		}
		f := d + 1
		if bytes.HasPrefix(line[f:], []byte("in ")) {
			f += 3
		}
		if fc := sourceColon(line, f); fc >= 0 && fc+1 < len(line) && line[fc+1] == ' ' {
			return fc + 2, ts, noYear, true
		}
		return d + 1, ts, noYear, true
	}
	if pos >= len(line) || line[pos] != ' ' {
		return 0, ts, noYear, false
	}
	return pos + 1, ts, noYear, true
}

// sourceColon returns the index of the ':' ending a source or function name
// starting at from, or -1. Names hold no quotes and are short.
func sourceColon(line []byte, from int) int {
	end := min(len(line), from+128)
	for i := from; i < end; i++ {
		switch line[i] {
		case ':':
			if i == from {
				return -1
			}
			return i
		case '\'', '"':
			return -1
		}
	}
	return -1
}

// levelAt reports whether the '[' at p opens "[digits]" after a log level
// ("NOTICE[1]", "NOTICE [1]") and returns the index after the ']'.
func levelAt(win []byte, p int) (int, bool) {
	q := p + 1
	for q < len(win) && '0' <= win[q] && win[q] <= '9' {
		q++
	}
	if q == p+1 || q >= len(win) || win[q] != ']' {
		return 0, false
	}
	before := win[:p]
	if len(before) > 0 && before[len(before)-1] == ' ' {
		before = before[:len(before)-1]
	}
	for _, lv := range levels {
		if bytes.HasSuffix(before, lv) {
			s := len(before) - len(lv)
			if s == 0 || before[s-1] == ' ' || before[s-1] == ']' {
				return q + 1, true
			}
		}
	}
	return 0, false
}

// parseLeadingStamp reads the timestamp a line starts with: "[…]" as
// Asterisk writes it, or a syslog / RFC 3339 stamp.
func parseLeadingStamp(line []byte, loc *time.Location) (time.Time, bool, bool) {
	if len(line) > 0 && line[0] == '[' {
		end := bytes.IndexByte(line[:min(len(line), 48)], ']')
		if end < 0 {
			return time.Time{}, false, false
		}
		return parseStamp(line[1:end], loc)
	}
	end := len(line)
	if end > 40 {
		end = 40
	}
	// A syslog stamp has two spaces at most ("Mar  1 15:35:53"); an ISO
	// stamp none. Cut at the first space after the clock.
	b := line[:end]
	if c := bytes.IndexByte(b, ':'); c >= 0 {
		if sp := bytes.IndexByte(b[c:], ' '); sp >= 0 {
			b = b[:c+sp]
		}
	}
	return parseStamp(b, loc)
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func num(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseClock parses "HH:MM:SS" with an optional ".fraction"; it returns the
// rest of b.
func parseClock(b []byte) (h, m, s, ns int, rest []byte, ok bool) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, 0, nil, false
	}
	var ok1, ok2, ok3 bool
	h, ok1 = num(b[0:2])
	m, ok2 = num(b[3:5])
	s, ok3 = num(b[6:8])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || s > 60 {
		return 0, 0, 0, 0, nil, false
	}
	rest = b[8:]
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i, scale := 1, 100000000
		for ; i < len(rest) && '0' <= rest[i] && rest[i] <= '9'; i++ {
			ns += int(rest[i]-'0') * scale
			scale /= 10
		}
		if i == 1 {
			return 0, 0, 0, 0, nil, false
		}
		rest = rest[i:]
	}
	return h, m, s, ns, rest, true
}

// parseStamp parses "2006-01-02 15:04:05[.000]", "2006-01-02T15:04:05[.000][Z|±hh:mm|±hhmm]"
// and "Jan _2 15:04:05[.000]".
func parseStamp(b []byte, loc *time.Location) (time.Time, bool, bool) {
	if len(b) >= 19 && b[4] == '-' && b[7] == '-' && (b[10] == ' ' || b[10] == 'T') {
		y, ok1 := num(b[0:4])
		mo, ok2 := num(b[5:7])
		d, ok3 := num(b[8:10])
		h, mi, s, ns, rest, ok4 := parseClock(b[11:])
		if !ok1 || !ok2 || !ok3 || !ok4 || mo < 1 || mo > 12 || d < 1 || d > 31 {
			return time.Time{}, false, false
		}
		if len(rest) == 0 {
			return time.Date(y, time.Month(mo), d, h, mi, s, ns, loc), false, true
		}
		off, ok := parseZone(rest)
		if !ok {
			return time.Time{}, false, false
		}
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC).Add(-time.Duration(off) * time.Second), false, true
	}
	if len(b) >= 14 && b[3] == ' ' {
		mo := 0
		for i, m := range months {
			if string(b[:3]) == m {
				mo = i + 1
				break
			}
		}
		if mo == 0 {
			return time.Time{}, false, false
		}
		r := b[4:]
		if r[0] == ' ' {
			r = r[1:]
		}
		sp := bytes.IndexByte(r, ' ')
		if sp < 1 || sp > 2 {
			return time.Time{}, false, false
		}
		d, ok := num(r[:sp])
		if !ok || d < 1 || d > 31 {
			return time.Time{}, false, false
		}
		h, mi, s, ns, rest, ok := parseClock(r[sp+1:])
		if !ok || len(rest) != 0 {
			return time.Time{}, false, false
		}
		return time.Date(0, time.Month(mo), d, h, mi, s, ns, loc), true, true
	}
	return time.Time{}, false, false
}

// parseZone parses "Z", "+hh:mm", "+hhmm" (and "-") into seconds east of UTC.
func parseZone(b []byte) (int, bool) {
	if len(b) == 1 && b[0] == 'Z' {
		return 0, true
	}
	if len(b) != 5 && len(b) != 6 || (b[0] != '+' && b[0] != '-') {
		return 0, false
	}
	h, ok1 := num(b[1:3])
	mm := b[3:]
	if len(b) == 6 {
		if b[3] != ':' {
			return 0, false
		}
		mm = b[4:]
	}
	m, ok2 := num(mm)
	if !ok1 || !ok2 || h > 23 || m > 59 {
		return 0, false
	}
	off := h*3600 + m*60
	if b[0] == '-' {
		off = -off
	}
	return off, true
}
