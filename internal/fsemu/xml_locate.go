package fsemu

import (
	"bytes"
	"context"
	"net/http"
	"strings"
)

// xmlLocateAPI is mod_commands xml_locate_function (1.10):
// `xml_locate <section> [<tag> <attr> <value>]`. It builds a REQUEST_PARAMS event
// (standard headers, then section, tag, tag_attr_name, tag_attr_val) and runs
// switch_xml_locate with it: the bindings that serve the section first (here: the
// switch's one XMLCurl), then the static XML. It prints the element found with
// switch_xml_toxml, or "can't find anything".
//
// Not emulated: `xml_locate root`, and the exact whitespace of switch_xml_toxml,
// which copies the source's own whitespace between elements (UNVERIFIED: the
// indentation written here).
func (s *Switch) xmlLocateAPI(args string) string {
	argv := strings.Fields(args)
	if len(argv) > 4 {
		argv = append(argv[:3], strings.Join(argv[3:], " "))
	}
	if len(argv) == 1 && strings.EqualFold(argv[0], "root") {
		return "-ERR xml_locate root is not emulated\n"
	}
	if len(argv) != 1 && len(argv) != 4 {
		return "-Error bad args\n"
	}
	q := locateQuery{section: argv[0]}
	hs := []Header{{"section", q.section}}
	if len(argv) == 4 {
		q.tag, q.key, q.value = argv[1], argv[2], argv[3]
		hs = append(hs, Header{"tag", q.tag}, Header{"tag_attr_name", q.key}, Header{"tag_attr_val", q.value})
	}
	ev := s.newEvent("REQUEST_PARAMS", "", [3]string{"mod_commands.c", "xml_locate_function", "2963"}, hs...)
	if n := s.locate(q, ev); n != nil {
		return toXML(n)
	}
	return "can't find anything\n"
}

// locate is switch_xml_locate with the switch's binding and static XML.
func (s *Switch) locate(q locateQuery, ev *Event) *xnode {
	if x := s.liveXML().xmlCurl; x != nil && s.Loaded("mod_xml_curl") && (Binding{Mask: x.Sections}).Covers(q.section) {
		if root := x.fetch(s.base, ev, q); root != nil {
			if n := findLocated(root, q); n != nil {
				return n
			}
		}
	}
	var section *xnode
	switch strings.ToLower(q.section) {
	case "chatplan":
		section = s.liveXML().chatplan
	case "configuration":
		section = s.liveXML().config
	}
	if section == nil {
		return nil
	}
	if q.tag == "" {
		return section
	}
	return section.findChild(q.tag, q.key, q.value)
}

// findLocated finds the section, then its child tag whose attribute key is value.
func findLocated(root *xnode, q locateQuery) *xnode {
	sec := root.findChild("section", "name", q.section)
	if sec == nil || q.tag == "" {
		return sec
	}
	return sec.findChild(q.tag, q.key, q.value)
}

// fetch is one binding call of switch_xml_locate: the document, or nil when
// FreeSWITCH would go on (connect or HTTP error, oversized or unparsable answer,
// "not found").
func (x *XMLCurl) fetch(ctx context.Context, ev *Event, q locateQuery) *xnode {
	req, addr, err := x.build(ev, q)
	if err != nil {
		return nil
	}
	if x.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, x.Timeout)
		defer cancel()
	}
	status, body, err := Exchange(ctx, addr, req)
	if err != nil || status != http.StatusOK || len(body) > maxResponseBytes {
		return nil
	}
	root, err := parseDoc(body)
	if err != nil {
		return nil
	}
	if res := root.findChild("section", "name", "result"); res != nil {
		if r := res.childrenNamed("result"); len(r) > 0 && strings.EqualFold(r[0].attrSoft("status"), "not found") {
			return nil
		}
	}
	return root
}

// toXML is switch_xml_toxml(node, SWITCH_FALSE), indented two spaces per level.
// Every element gets an end tag: a parsed element's text is never NULL in
// switch_xml, so the "/>" branch of switch_xml_toxml_r does not run for it.
func toXML(n *xnode) string {
	var b bytes.Buffer
	writeXML(&b, n, 0)
	return b.String()
}

func writeXML(b *bytes.Buffer, n *xnode, depth int) {
	if b.Len() > 0 && b.Bytes()[b.Len()-1] == '>' {
		b.WriteByte('\n')
	}
	b.WriteString(strings.Repeat("  ", depth))
	b.WriteString("<" + n.name)
	for _, a := range n.attrs {
		b.WriteString(" " + a.Name.Local + `="` + ampEncode(a.Value, true) + `"`)
	}
	b.WriteByte('>')
	if len(n.children) > 0 {
		for _, c := range n.children {
			writeXML(b, c, depth+1)
		}
	} else {
		b.WriteString(ampEncode(n.text.String(), false))
	}
	if b.Bytes()[b.Len()-1] == '\n' {
		b.WriteString(strings.Repeat("  ", depth))
	}
	b.WriteString("</" + n.name + ">\n")
}

// ampEncode is switch_xml_ampencode: attribute values also escape quotes and
// whitespace.
func ampEncode(s string, attr bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '\r':
			b.WriteString("&#xD;")
		case attr && r == '"':
			b.WriteString("&quot;")
		case attr && r == '\n':
			b.WriteString("&#xA;")
		case attr && r == '\t':
			b.WriteString("&#x9;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
