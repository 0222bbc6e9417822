package freeswitchconf

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

// node is a minimal XML element tree, enough to check FreeSWITCH configuration files.
type node struct {
	name     string
	attrs    map[string]string
	children []*node
}

// kids returns the direct children named name.
func (n *node) kids(name string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// all returns every descendant named name, in document order.
func (n *node) all(name string) []*node {
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
		out = append(out, c.all(name)...)
	}
	return out
}

// parseXML parses data strictly with encoding/xml and returns its single root element.
func parseXML(data []byte) (*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var (
		root  *node
		stack []*node
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("more than one root element")
				}
				root = n
			} else {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 && len(bytes.TrimSpace(tok)) > 0 {
				return nil, errors.New("text outside the root element")
			}
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// parseFile parses one shipped file. A .snippet holds several top-level elements meant to be
// pasted into a parent element, so it is wrapped in a <snippet> root first.
func parseFile(t *testing.T, path string) *node {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".snippet") {
		data = append(append([]byte("<snippet>\n"), data...), "\n</snippet>\n"...)
	}
	root, err := parseXML(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return root
}

// switchTrue mirrors FreeSWITCH's switch_true macro.
func switchTrue(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "on", "true", "t", "enabled", "active", "allow":
		return true
	}
	n, err := strconv.Atoi(v)
	return err == nil && n != 0
}

// params returns the name/value pairs of the <param> children of n. FreeSWITCH compares
// sofia and xml_curl param names case-insensitively, so names are lowercased.
func params(n *node) [][2]string {
	var out [][2]string
	for _, p := range n.kids("param") {
		out = append(out, [2]string{strings.ToLower(p.attrs["name"]), p.attrs["value"]})
	}
	return out
}

func TestParseXMLRejectsBrokenInput(t *testing.T) {
	for _, tc := range []struct {
		name, in string
	}{
		{"two roots", "<a/><b/>"},
		{"unclosed", "<a>"},
		{"dash dash in comment", "<!-- a -- b --><a/>"},
		{"empty", "<!-- only a comment -->"},
		{"stray text", "text<a/>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseXML([]byte(tc.in)); err == nil {
				t.Errorf("parseXML(%q) succeeded, want an error", tc.in)
			}
		})
	}
}
