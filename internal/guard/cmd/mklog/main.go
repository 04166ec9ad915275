// Command mklog writes a large Asterisk log for measuring "sipwall guard
// --scan-log" against fail2ban-regex. The failure lines are the real line
// shapes of the corpus (every line its failJSON comment annotates as a
// match), with the annotated address replaced by one of -sources distinct
// sources (198.18.0.0/15, and 2001:db8::/96 for the IPv6 shapes) and the
// stamp replaced by a clock that advances -step per line, in the line's own
// stamp format. Between failures come -quiet ordinary lines (dialplan,
// registrations, qualify, RTP), as a PBX writes them. The file's
// modification time is the last line's, which gives the year to the stamps
// that have none. With -pbx freeswitch the ordinary lines are FreeSWITCH's
// (the failure lines come from -corpus, e.g. fail2ban's FreeSWITCH test log;
// -exclude drops the templates containing a text).
//
//	go run ./internal/guard/cmd/mklog -lines 200000 -sources 65536 -o /tmp/fail.log
//	go run ./internal/guard/cmd/mklog -lines 200000 -quiet 999 -o /tmp/quiet.log
//	go run ./internal/guard/cmd/mklog -pbx freeswitch -corpus internal/guard/events/testdata/fail2ban-freeswitch.log \
//		-exclude "SIP auth challenge" -o /tmp/fs-fail.log
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

type template struct {
	line string
	host string
	v6   bool
}

// ordinary lines, %s is the stamp; %d a counter.
var ordinary = []string{
	"[%s] VERBOSE[%d][C-%08x] pbx.c: Executing [100@from-internal:1] Dial(\"PJSIP/1001-%08x\", \"PJSIP/100,30,tr\") in new stack",
	"[%s] VERBOSE[%d][C-%08x] app_dial.c: Called PJSIP/100",
	"[%s] VERBOSE[%d][C-%08x] app_dial.c: PJSIP/100-%08x is ringing",
	"[%s] VERBOSE[%d][C-%08x] bridge_channel.c: Channel PJSIP/100-%08x joined 'simple_bridge' basic-bridge <4f3c1a2e-9d1b-4a2c-8f1e-2b7a6c5d4e3f>",
	"[%s] VERBOSE[%d] res_pjsip_registrar.c: Added contact 'sip:1001@192.0.2.%d:5060;ob' to AOR '1001' with expiration of %d seconds",
	"[%s] NOTICE[%d] chan_sip.c: Peer '1002' is now Reachable. (%dms / %dms)",
	"[%s] VERBOSE[%d] res_pjsip/pjsip_options.c: Contact 1001/sip:1001@192.0.2.%d:5060 is now Reachable.  RTT: %d.123 msec",
	"[%s] WARNING[%d][C-%08x] res_rtp_asterisk.c: %d: RTP Read too short",
	"[%s] VERBOSE[%d][C-%08x] pbx.c: Spawn extension (from-internal, 100, %d) exited non-zero on 'PJSIP/1001-%08x'",
	"[%s] VERBOSE[%d] res_pjsip_registrar.c: Removed contact 'sip:1002@192.0.2.%d:5060' from AOR '1002' due to expiration after %d seconds",
}

// ordinaryFreeSWITCH are FreeSWITCH's ordinary lines, %s the stamp.
var ordinaryFreeSWITCH = []string{
	"%s [NOTICE] switch_channel.c:1118 New Channel sofia/internal/%d@192.0.2.10 [51dd01fc-4d75-4ff4-9198-%012x]",
	"%s [DEBUG] switch_core_state_machine.c:585 (sofia/internal/%d@192.0.2.10) Running State Change CS_NEW (Cur 1 Tot %d)",
	"%s [DEBUG] sofia.c:10243 sofia/internal/%d@192.0.2.10 receiving invite from 192.0.2.11:5060 version: 1.10.9 -release 64bit",
	"%s [INFO] mod_dialplan_xml.c:637 Processing %d <1001>->%d in context default",
	"%s [NOTICE] sofia_reg.c:3243 Registered user %d@192.0.2.10 contact sip:1001@192.0.2.11:5060 expires %d",
	"%s [WARNING] sofia_reg.c:1793 SIP auth challenge (REGISTER) on sofia profile 'internal' for [%d@192.0.2.10] from ip 192.0.2.11",
	"%s [NOTICE] switch_channel.c:3993 Hangup sofia/internal/%d@192.0.2.10 [CS_EXECUTE] [NORMAL_CLEARING] %d",
}

func main() {
	corpus := flag.String("corpus", "../shared/corpus/asterisk-logs/fail2ban-asterisk.log", "the annotated Asterisk log the failure lines are taken from")
	lines := flag.Int("lines", 200000, "lines to write")
	sources := flag.Int("sources", 65536, "distinct failing sources (at most 131072)")
	quiet := flag.Int("quiet", 0, "ordinary lines after every failure")
	step := flag.Duration("step", 10*time.Millisecond, "time between two lines")
	out := flag.String("o", "", "output file (default standard output)")
	pbx := flag.String("pbx", "asterisk", "the ordinary lines: asterisk or freeswitch")
	exclude := flag.String("exclude", "", "drop the failure templates containing this text")
	flag.Parse()
	ord := ordinary
	stampFormat := time.DateTime
	switch *pbx {
	case "asterisk":
	case "freeswitch":
		ord, stampFormat = ordinaryFreeSWITCH, "2006-01-02 15:04:05.000000"
	default:
		fmt.Fprintln(os.Stderr, "mklog: -pbx is asterisk or freeswitch")
		os.Exit(2)
	}
	if *sources < 1 || *sources > 1<<17 || *lines < 1 || *quiet < 0 {
		fmt.Fprintln(os.Stderr, "mklog: -lines and -sources must be positive (-sources at most 131072), -quiet not negative")
		os.Exit(2)
	}
	ts, err := templates(*corpus)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mklog:", err)
		os.Exit(1)
	}
	var v4, v6 []template
	for _, t := range ts {
		if *exclude != "" && strings.Contains(t.line, *exclude) {
			continue
		}
		if t.v6 {
			v6 = append(v6, t)
		} else {
			v4 = append(v4, t)
		}
	}
	w := os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mklog:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	clock := time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)
	fails := 0
	for i := 0; i < *lines; i++ {
		clock = clock.Add(*step)
		if *quiet > 0 && i%(*quiet+1) != *quiet {
			o := ord[i%len(ord)]
			args := []any{clock.Format(stampFormat), 1000 + i%30000}
			for range strings.Count(o, "%") - 2 {
				args = append(args, i)
			}
			fmt.Fprintf(bw, o+"\n", args...)
			continue
		}
		k := fails%*sources + 1
		// A source keeps one family: every 32nd is an IPv6 one.
		var t template
		var addr netip.Addr
		if k%32 == 0 && len(v6) > 0 {
			t = v6[(fails/32)%len(v6)]
			addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: 0, 13: byte(k >> 16), 14: byte(k >> 8), 15: byte(k)})
		} else {
			t = v4[fails%len(v4)]
			addr = netip.AddrFrom4([4]byte{198, 18 + byte(k>>16), byte(k >> 8), byte(k)})
		}
		fails++
		bw.WriteString(restamp(replaceHost(t.line, t.host, addr.String()), clock))
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "mklog:", err)
		os.Exit(1)
	}
	if *out != "" {
		// The stamps without a year take the year of the file's mtime.
		if err := os.Chtimes(*out, clock, clock); err != nil {
			fmt.Fprintln(os.Stderr, "mklog:", err)
			os.Exit(1)
		}
	}
}

// templates returns the annotated failure lines of the corpus.
func templates(path string) ([]template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []template
	host := ""
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "# failJSON:"); ok {
			var j struct {
				Match bool   `json:"match"`
				Host  string `json:"host"`
			}
			if err := json.Unmarshal([]byte(rest), &j); err != nil {
				return nil, fmt.Errorf("%s: %v", path, err)
			}
			host = ""
			if j.Match {
				host = j.Host
			}
			continue
		}
		if host == "" || strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return nil, fmt.Errorf("%s: host %q: %v", path, host, err)
		}
		out = append(out, template{line: l, host: host, v6: a.Is6()})
		host = ""
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no annotated failure lines", path)
	}
	return out, nil
}

// replaceHost replaces every occurrence of host that is not part of a
// longer address.
func replaceHost(line, host, addr string) string {
	var b strings.Builder
	for {
		i := strings.Index(line, host)
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		end := i + len(host)
		v6 := strings.Contains(host, ":")
		if (i > 0 && addrByte(line[i-1], v6)) || (end < len(line) && addrByte(line[end], v6)) {
			b.WriteString(line[:end])
			line = line[end:]
			continue
		}
		b.WriteString(line[:i])
		b.WriteString(addr)
		line = line[end:]
	}
}

// addrByte reports whether c can continue an address of the family.
func addrByte(c byte, v6 bool) bool {
	if c == '.' || '0' <= c && c <= '9' {
		return true
	}
	return v6 && (c == ':' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
}

// restamp replaces the stamp a line starts with by t in the same format.
func restamp(line string, t time.Time) string {
	switch {
	case len(line) > 27 && line[4] == '-' && line[10] == ' ' && line[19] == '.' && line[26] == ' ':
		// FreeSWITCH "2013-12-31 17:39:54.767815 [WARNING] …"
		return t.Format("2006-01-02 15:04:05.000000") + line[26:]
	case len(line) > 21 && line[0] == '[' && line[20] == ']' && line[5] == '-':
		return "[" + t.Format(time.DateTime) + line[20:]
	case len(line) > 17 && line[0] == '[' && line[16] == ']':
		return "[" + t.Format(time.Stamp) + line[16:]
	case len(line) > 16 && line[3] == ' ' && strings.Contains(line[:16], ":"):
		// syslog "Nov 4 18:30:40 host …"
		rest := strings.TrimLeft(line[4:], " ")
		sp := strings.IndexByte(rest, ' ')
		if sp < 1 || sp > 2 || len(rest) < sp+9 || rest[sp+3] != ':' {
			return line
		}
		return t.Format(time.Stamp) + rest[sp+9:]
	}
	return line
}
