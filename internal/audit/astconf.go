package audit

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
)

// This file reads Asterisk's configuration syntax:
//
//	[section]            a section (Asterisk calls it a category)
//	[name](!)            a template
//	[name](tpl1,tpl2)    a section inheriting the templates' settings
//	[name](+)            more settings for the section defined last under that name
//	key = value          a setting; "key => value" is the same
//	; comment            up to the end of the line; "\;" is a literal semicolon
//	;-- block --;        a comment that may span lines (and nest)
//	#include file        another file, relative to the configuration directory
//	#tryinclude file     the same, silently skipped when missing
//	#exec command        the output of a command (not followed by the audit)

// astEntry is one setting.
type astEntry struct {
	Key, Value string
	File       string
	Line       int
}

// astSection is one section with its own settings, in file order.
type astSection struct {
	Name     string
	File     string
	Line     int
	Template bool
	Inherits []string
	Entries  []astEntry
}

// astProblem is a line the parser could not understand or an include it
// could not follow.
type astProblem struct {
	File string
	Line int
	Msg  string
	// Kind is "syntax", "include" (a missing #include) or "exec".
	Kind string
}

// astConfig is a parsed configuration file with its includes.
type astConfig struct {
	Path     string
	Sections []*astSection
	Problems []astProblem
}

// maxIncludeDepth bounds nested #include, as Asterisk does against loops.
const maxIncludeDepth = 16

// astLoader reads the files of one configuration.
type astLoader struct {
	dir  string
	read func(path string) ([]byte, error)
	glob func(pattern string) ([]string, error)
	cfg  *astConfig
	cur  *astSection
	seen map[string]bool
	// budget bounds the files read in all.
	budget int
}

// parseAsterisk parses data (the contents of path) and the files it
// includes. read returns a file's contents, or an error that satisfies
// isNotExist when it is missing (any other error has been reported by read);
// glob expands #include patterns.
func parseAsterisk(path string, data []byte, dir string, read func(string) ([]byte, error), glob func(string) ([]string, error)) *astConfig {
	l := &astLoader{dir: dir, read: read, glob: glob, cfg: &astConfig{Path: path}, seen: map[string]bool{path: true}, budget: maxIncludedFiles}
	l.parse(path, data, 0)
	return l.cfg
}

func (l *astLoader) problem(file string, line int, kind, format string, args ...any) {
	l.cfg.Problems = append(l.cfg.Problems, astProblem{File: file, Line: line, Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

func (l *astLoader) parse(file string, data []byte, depth int) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxInputSize)
	level := 0 // nesting of ;-- --; comments
	lineNo := 0
	for sc.Scan() {
		lineNo++
		var text string
		text, level = stripAsteriskComments(sc.Text(), level)
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		switch text[0] {
		case '[':
			l.section(file, lineNo, text)
		case '#':
			l.directive(file, lineNo, text, depth)
		default:
			l.setting(file, lineNo, text)
		}
	}
	if err := sc.Err(); err != nil {
		l.problem(file, lineNo+1, "syntax", "cannot read past line %d: %v", lineNo, err)
	}
	if level > 0 {
		l.problem(file, lineNo, "syntax", "a ;-- block comment is not closed with --; before the end of the file")
	}
}

// stripAsteriskComments removes comments from one line, following Asterisk's
// rules; level is the block-comment nesting carried from line to line.
func stripAsteriskComments(line string, level int) (string, int) {
	var out strings.Builder
	start := 0 // first byte not yet consumed by a comment marker
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != ';' {
			if level == 0 {
				out.WriteByte(c)
			}
			continue
		}
		switch {
		case i > start && line[i-1] == '\\':
			if level == 0 {
				s := out.String()
				out.Reset()
				out.WriteString(s[:len(s)-1])
				out.WriteByte(';')
			}
		case strings.HasPrefix(line[i:], ";--") && !strings.HasPrefix(line[i:], ";---"):
			level++
			i += 2
			start = i + 1
		case level > 0 && i >= start+2 && line[i-2:i] == "--":
			level--
			start = i + 1
		case level == 0:
			return out.String(), level
		default:
			start = i + 1
		}
	}
	return out.String(), level
}

func (l *astLoader) section(file string, line int, text string) {
	end := strings.IndexByte(text, ']')
	if end < 0 {
		l.problem(file, line, "syntax", "section header %q has no closing ]", text)
		l.cur = nil
		return
	}
	name := strings.TrimSpace(text[1:end])
	rest := strings.TrimSpace(text[end+1:])
	s := &astSection{Name: name, File: file, Line: line}
	appendTo := false
	if rest != "" {
		if rest[0] != '(' || !strings.HasSuffix(rest, ")") {
			l.problem(file, line, "syntax", "unexpected %q after section [%s]", rest, name)
		} else {
			for opt := range strings.SplitSeq(rest[1:len(rest)-1], ",") {
				switch opt = strings.TrimSpace(opt); opt {
				case "":
				case "!":
					s.Template = true
				case "+":
					appendTo = true
				default:
					s.Inherits = append(s.Inherits, opt)
				}
			}
		}
	}
	if name == "" {
		l.problem(file, line, "syntax", "empty section name")
	}
	for _, tpl := range s.Inherits {
		if !l.defined(tpl) {
			l.problem(file, line, "syntax", "[%s] inherits from (%s), which is not defined before it", name, tpl)
		}
	}
	if appendTo {
		for i := len(l.cfg.Sections) - 1; i >= 0; i-- {
			if l.cfg.Sections[i].Name == name {
				l.cur = l.cfg.Sections[i]
				return
			}
		}
		l.problem(file, line, "syntax", "[%s](+) adds to a section that is not defined before it", name)
	}
	l.cfg.Sections = append(l.cfg.Sections, s)
	l.cur = s
}

func (l *astLoader) defined(name string) bool {
	for _, s := range l.cfg.Sections {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (l *astLoader) directive(file string, line int, text string, depth int) {
	word, arg, _ := strings.Cut(text[1:], " ")
	if w, a, ok := strings.Cut(text[1:], "\t"); ok && len(w) < len(word) {
		word, arg = w, a
	}
	arg = strings.TrimSpace(arg)
	if len(arg) >= 2 && (arg[0] == '"' && arg[len(arg)-1] == '"' || arg[0] == '<' && arg[len(arg)-1] == '>') {
		arg = arg[1 : len(arg)-1]
	}
	switch strings.ToLower(word) {
	case "include", "tryinclude":
		if arg == "" {
			l.problem(file, line, "syntax", "#%s without a file name", word)
			return
		}
		l.include(file, line, arg, word == "tryinclude", depth)
	case "exec", "tryexec":
		l.problem(file, line, "exec", "#%s %s: the output of a command is part of this configuration", word, arg)
	default:
		l.problem(file, line, "syntax", "unknown directive #%s", word)
	}
}

func (l *astLoader) include(file string, line int, name string, try bool, depth int) {
	if depth >= maxIncludeDepth {
		l.problem(file, line, "syntax", "#include %s: includes nested deeper than %d", name, maxIncludeDepth)
		return
	}
	pattern := name
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(l.dir, pattern)
	}
	var paths []string
	if strings.ContainsAny(pattern, "*?[") {
		m, err := l.glob(pattern)
		if err != nil {
			l.problem(file, line, "syntax", "#include %s: %v", name, err)
			return
		}
		paths = m
	} else {
		paths = []string{pattern}
	}
	found := false
	for _, p := range paths {
		if l.seen[p] {
			l.problem(file, line, "syntax", "#include %s: the file includes itself", name)
			found = true
			continue
		}
		if l.budget--; l.budget < 0 {
			l.problem(file, line, "syntax", "#include %s: more than %d included files", name, maxIncludedFiles)
			return
		}
		data, err := l.read(p)
		if err != nil {
			found = found || !isNotExist(err) // unreadable: reported by read
			continue
		}
		found = true
		l.seen[p] = true
		l.parse(p, data, depth+1)
		delete(l.seen, p)
	}
	if !found && !try && len(paths) <= 1 {
		l.problem(file, line, "include", "#include %s: no such file", name)
	}
}

func (l *astLoader) setting(file string, line int, text string) {
	key, value, ok := strings.Cut(text, "=")
	if !ok {
		l.problem(file, line, "syntax", "no '=' in %q", text)
		return
	}
	value = strings.TrimPrefix(value, ">")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if key == "" {
		l.problem(file, line, "syntax", "setting without a name in %q", text)
		return
	}
	if l.cur == nil {
		l.problem(file, line, "syntax", "setting %q is outside any [section]", key)
		return
	}
	l.cur.Entries = append(l.cur.Entries, astEntry{Key: key, Value: value, File: file, Line: line})
}

// resolved is a section with its templates' settings in front of its own.
type resolved struct {
	*astSection
	All []astEntry
}

// get returns the last value of key (case-insensitive), as Asterisk keeps
// the last of repeated single-valued settings.
func (r resolved) get(key string) (astEntry, bool) {
	for i := len(r.All) - 1; i >= 0; i-- {
		if strings.EqualFold(r.All[i].Key, key) {
			return r.All[i], true
		}
	}
	return astEntry{}, false
}

// value returns the last value of key or def.
func (r resolved) value(key, def string) string {
	if e, ok := r.get(key); ok {
		return e.Value
	}
	return def
}

// all returns every setting of key, in order.
func (r resolved) all(keys ...string) []astEntry {
	var out []astEntry
	for _, e := range r.All {
		for _, k := range keys {
			if strings.EqualFold(e.Key, k) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// where is the line to cite for key: the setting if present, else the section header.
func (r resolved) where(key string) (string, int) {
	if e, ok := r.get(key); ok {
		return e.File, e.Line
	}
	return r.File, r.Line
}

// sections returns the non-template sections with their inherited settings.
func (c *astConfig) sections() []resolved {
	var out []resolved
	for i, s := range c.Sections {
		if s.Template {
			continue
		}
		out = append(out, resolved{astSection: s, All: c.inherit(i, 0)})
	}
	return out
}

// section returns the first non-template section called name.
func (c *astConfig) section(name string) (resolved, bool) {
	for _, r := range c.sections() {
		if strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return resolved{}, false
}

// inherit returns the settings of section i: its templates' (looked up among
// the sections defined before it) followed by its own.
func (c *astConfig) inherit(i, depth int) []astEntry {
	s := c.Sections[i]
	var out []astEntry
	if depth < maxIncludeDepth {
		for _, name := range s.Inherits {
			for j := 0; j < i; j++ {
				if c.Sections[j].Name == name {
					out = append(out, c.inherit(j, depth+1)...)
					break
				}
			}
		}
	}
	return append(out, s.Entries...)
}

// astBool interprets Asterisk's true values (ast_true).
func astBool(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "true", "y", "t", "1", "on":
		return true
	}
	return false
}
