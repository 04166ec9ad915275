package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultPath is where sipwall looks for its policy when -c is not given.
const DefaultPath = "/etc/sipwall/sipwall.yaml"

// Error is a problem in a policy file, located by file, line and key.
type Error struct {
	File string
	Line int
	Key  string
	// Flag is the command-line flag that gave the key its value, if one
	// did: the error then names the flag, not the file.
	Flag string
	Msg  string
}

func (e *Error) Error() string {
	if e.Flag != "" {
		return fmt.Sprintf("%s (%s): %s", e.Flag, e.Key, e.Msg)
	}
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// LoadFile reads, decodes and validates the policy in file.
func LoadFile(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("cannot read policy: %v", unwrapPathError(err))}
	}
	return Parse(file, data)
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Parse decodes and validates a policy; name is used in error messages.
// Keys absent from data keep the article's defaults. Every problem found is
// returned (joined), each naming the file, line and key.
func Parse(name string, data []byte) (*Policy, error) {
	p := Default()
	p.Source = name
	p.pos = map[string]int{}
	if len(bytes.TrimSpace(data)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			line := yamlErrLine(err)
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			msg = strings.TrimPrefix(msg, fmt.Sprintf("line %d: ", line))
			return nil, &Error{File: name, Line: line, Msg: msg}
		}
		d := &decoder{file: name, pos: p.pos}
		if len(doc.Content) > 0 {
			d.decode(doc.Content[0], reflect.ValueOf(p).Elem(), "")
		}
		if len(d.errs) > 0 {
			return nil, errors.Join(d.errs...)
		}
	}
	if errs := p.validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// yamlErrLine extracts "line N" from a yaml syntax error.
func yamlErrLine(err error) int {
	s := err.Error()
	i := strings.Index(s, "line ")
	if i < 0 {
		return 0
	}
	s = s[i+5:]
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(s[:j])
	return n
}

// nodeDecoder is implemented by policy types with a YAML syntax of their own.
type nodeDecoder interface {
	decodeNode(n *yaml.Node) error
}

// decoder walks a YAML node tree into the policy structs, strictly: unknown
// keys, duplicate keys and wrong types are errors that carry line and key.
type decoder struct {
	file string
	pos  map[string]int
	errs []error
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Key: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		if _, ok := d.pos[path]; !ok {
			d.pos[path] = n.Line
		}
	}
	if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
		if isNull(n) {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		if err := nd.decodeNode(n); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		items := n.Content
		if n.Kind == yaml.ScalarNode { // a single value where a list is expected
			items = []*yaml.Node{n}
		} else if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, found %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			d.decode(it, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || isNull(n) {
			d.fail(n, path, "expected a string, found %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a number, found %s", kindName(n))
			return
		}
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			d.fail(n, path, "expected a whole number, found %s", short(n.Value))
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected true or false, found %s", kindName(n))
			return
		}
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.fail(n, path, "expected true or false, found %s", short(n.Value))
		}
	default:
		d.fail(n, path, "internal: cannot decode into %s", v.Type())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return // "key:" with nothing keeps the defaults
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys, found %s", kindName(n))
		return
	}
	fields := map[string]int{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(k, key, "unknown key (known keys here: %s)", knownKeys(fields))
			continue
		}
		if seen[k.Value] {
			d.fail(k, key, "key given twice")
			continue
		}
		seen[k.Value] = true
		d.pos[key] = k.Line
		d.decode(val, v.Field(idx), key)
	}
}

func knownKeys(fields map[string]int) string {
	ks := make([]string, 0, len(fields))
	for k := range fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return short(n.Value)
	}
	return "something else"
}
