package dialplan

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// notFound makes FreeSWITCH try its next binding, then its static chatplan: for a
// message, stock delivery.
const notFound = `<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<document type="freeswitch/xml">
  <section name="result">
    <result status="not found"/>
  </section>
</document>
`

// NotFound returns the "not found" document.
func NotFound() []byte { return []byte(notFound) }

// ErrUnrenderable means a value cannot be placed in an XML document unchanged.
var ErrUnrenderable = errors.New("value cannot be written as XML")

// Chatplan renders the document that hands a message to sipsilo: in the lookup's
// context, one extension whose condition always matches sets sipsilo_id and runs
// final, which stops FreeSWITCH's own direct delivery (mod_sms.c, final_function; docs/decisions.md §9). FreeSWITCH
// expands ${...} in action data, so the data holds only the id sipsilo made
// (docs/decisions.md §10); the context is escaped like any other value.
func Chatplan(context, id string) ([]byte, error) {
	ctx, err := EscapeAttr(context)
	if err != nil {
		return nil, fmt.Errorf("context: %w", err)
	}
	if !isToken(id) {
		return nil, fmt.Errorf("id: %w: not a plain token", ErrUnrenderable)
	}
	// One allocation of the exact size: this answers every message sipsilo takes.
	b := make([]byte, 0, len(chatplanHead)+len(ctx)+len(chatplanMid)+len(id)+len(chatplanTail))
	b = append(b, chatplanHead...)
	b = append(b, ctx...)
	b = append(b, chatplanMid...)
	b = append(b, id...)
	return append(b, chatplanTail...), nil
}

// The chatplan answer around its context name and message id.
const (
	chatplanHead = `<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<document type="freeswitch/xml">
  <section name="chatplan" description="sipsilo">
    <context name="`
	chatplanMid = `">
      <extension name="sipsilo">
        <condition>
          <action application="set" data="sipsilo_id=`
	chatplanTail = `"/>
          <action application="final"/>
        </condition>
      </extension>
    </context>
  </section>
</document>
`
)

// EscapeAttr escapes s for a double-quoted attribute of an XML document
// FreeSWITCH reads (xml_curl answers, and the config files fs-config writes). Besides the XML metacharacters it
// writes '$' as a character reference: mod_xml_curl parses answers with
// switch_xml_parse_file, which first runs FreeSWITCH's config preprocessor over the
// raw text, and that expands $${...} (and runs <X-PRE-PROCESS>, which the escaped '<'
// already defuses). Whitespace that attribute normalisation would turn into spaces is
// kept as references. Text XML 1.0 cannot hold at all is refused, never altered.
func EscapeAttr(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: invalid UTF-8", ErrUnrenderable)
	}
	if plainAttr(s) {
		return s, nil // the usual context name: nothing to escape
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		case '$':
			b.WriteString("&#36;")
		case '\t':
			b.WriteString("&#9;")
		case '\n':
			b.WriteString("&#10;")
		case '\r':
			b.WriteString("&#13;")
		default:
			if r < 0x20 || r == 0xFFFE || r == 0xFFFF {
				return "", fmt.Errorf("%w: control character %U", ErrUnrenderable, r)
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// plainAttr reports whether s is printable ASCII that EscapeAttr leaves as it is.
func plainAttr(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f:
			return false
		case c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' || c == '$':
			return false
		}
	}
	return true
}

// isToken reports whether s is safe verbatim in action data: letters and digits only,
// so nothing in it can start a ${...} expansion or end the attribute.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}
