package events

import "time"

// Asterisk's console output, when it ends up in a log file (a verbose
// remote console piped to a file, logger.conf writing to a terminal-like
// channel), colours the level, the file and the function:
//
//	[Dec  1 07:00:00] \x1b[1;33mNOTICE\x1b[0m[1234]: \x1b[1;37mchan_sip.c\x1b[0m:23417 \x1b[1;37mhandle_request_register\x1b[0m: Registration from …
//
// Such a line is read with its colour sequences (SGR: ESC '[' digits and
// semicolons 'm') removed; other escapes stay. A caller who puts colour
// sequences in a header only removes them from their own text: a sequence
// is removed only when it is complete, and the text Asterisk writes after a
// caller's field starts with a quote or a parenthesis, never with the digits
// and 'm' a cut sequence would need.

// colourBuf is the size of the copy kept on the stack; longer coloured
// lines are copied to the heap.
const colourBuf = 2048

// classifyColoured classifies line with its escape sequences removed.
func classifyColoured(line []byte, loc *time.Location) (Event, Result, string) {
	var buf [colourBuf]byte
	var dst []byte
	if len(line) <= len(buf) {
		dst = buf[:0]
	} else {
		dst = make([]byte, 0, len(line))
	}
	dst = stripEscapes(dst, line)
	return classify(trimRight(dst), loc)
}

// stripEscapes appends b without its SGR sequences to dst.
func stripEscapes(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0x1b && i+1 < len(b) && b[i+1] == '[' {
			j := i + 2
			for j < len(b) && ('0' <= b[j] && b[j] <= '9' || b[j] == ';') {
				j++
			}
			if j < len(b) && b[j] == 'm' {
				i = j
				continue
			}
		}
		dst = append(dst, c)
	}
	return dst
}
