package fsemu

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// xnode is the part of switch_xml the chatplan needs: name, attributes,
// children in order and the element's own character data.
type xnode struct {
	name     string
	attrs    []xml.Attr
	children []*xnode
	text     strings.Builder
}

// attr returns the attribute, and whether it is present (switch_xml_attr).
func (n *xnode) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// attrSoft is switch_xml_attr_soft: "" when absent.
func (n *xnode) attrSoft(name string) string {
	v, _ := n.attr(name)
	return v
}

// childrenNamed lists the children called name, in document order.
func (n *xnode) childrenNamed(name string) []*xnode {
	var out []*xnode
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// findChild is switch_xml_find_child: the first child called name whose
// attribute attr equals value, compared case-insensitively.
func (n *xnode) findChild(name, attr, value string) *xnode {
	for _, c := range n.childrenNamed(name) {
		if v, ok := c.attr(attr); ok && strings.EqualFold(v, value) {
			return c
		}
	}
	return nil
}

// parseDoc parses strictly with encoding/xml. FreeSWITCH's own parser is
// more lenient; a document it would accept but encoding/xml rejects is
// treated as unparsable, which errs on the side sipsilo must survive.
func parseDoc(doc []byte) (*xnode, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var root *xnode
	var stack []*xnode
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if t.Name.Space != "" {
				name = t.Name.Space + ":" + name
			}
			n := &xnode{name: name, attrs: t.Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("more than one root element")
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("text outside the root element")
			}
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// docVerdict is what switch_xml_locate makes of a gateway document.
type docVerdict struct {
	section  *xnode // <section name="chatplan">, nil when unusable
	notFound bool   // <section name="result"><result status="not found"/>
	reason   string // why the static chatplan is used instead, if it is
}

// judgeDoc reproduces switch_xml_locate for section "chatplan" with one
// binding: a "not found" result, an unparsable document or one without the
// chatplan section all make FreeSWITCH use its static chatplan instead.
func judgeDoc(doc []byte) docVerdict {
	root, err := parseDoc(doc)
	if err != nil {
		return docVerdict{reason: fmt.Sprintf("unparsable document: %v", err)}
	}
	if res := root.findChild("section", "name", "result"); res != nil {
		if r := res.childrenNamed("result"); len(r) > 0 {
			if st, ok := r[0].attr("status"); ok && strings.EqualFold(st, "not found") {
				return docVerdict{notFound: true, reason: "gateway answered not found"}
			}
		}
	}
	if s := root.findChild("section", "name", "chatplan"); s != nil {
		return docVerdict{section: s}
	}
	return docVerdict{reason: "document has no chatplan section"}
}
