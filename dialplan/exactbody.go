package dialplan

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"strings"
)

// The shipped binding's URL carries the body twice, both wrapped in one '_' on
// each side (TextSentinel):
//
//	text=${url_encode(_${_body}_)}  the body, URL-encoded by FreeSWITCH
//	md5=${md5(_${_body}_)}          its MD5, lower-case hex
//
// FreeSWITCH strips CR, LF, TAB, VT and spaces from both ends of every API
// argument; the wrapper keeps the body's own edges inside. Its url_encode
// copies a '%' followed by two upper-case hex digits as it is, so "%20" in the
// URL is either an encoded space or the text "%20". DecodeText settles each
// such escape: one whose byte url_encode never encodes (e.g. "%41", 'A') was
// literal text; for the rest the MD5 decides, trying the literal reading of a
// few escapes within a budget. A body whose MD5 cannot be matched is returned
// lenient and not exact; the exact copy then comes from the ESL MESSAGE event
// (docs/architecture.md, "Intake").
const TextSentinel = "_"

// textSearchBudget bounds the bytes hashed while settling ambiguous escapes
// (each candidate counted 64 bytes more), so that a hostile body full of them
// costs at most about a tenth of a millisecond of CPU per request.
const textSearchBudget = 32 << 10

// textMaxLiterals is the most escapes read as literal text in one candidate.
const textMaxLiterals = 4

// urlUnsafe is FreeSWITCH's SWITCH_URL_UNSAFE: with the bytes below 0x20 and
// above 0x7E, what its url_encode escapes.
const urlUnsafe = "\r\n #%&+:;<=>?@[\\]^`{|}\""

// fsEscapes reports whether FreeSWITCH's url_encode escapes byte c.
func fsEscapes(c byte) bool {
	return c < ' ' || c > '~' || strings.IndexByte(urlUnsafe, c) >= 0
}

func isUpperHexDigit(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// textPart is a run of the decoded body: fixed bytes, or one ambiguous escape
// (alt is its literal reading, b its byte).
type textPart struct {
	b   []byte
	alt string // non-empty: ambiguous
}

// DecodeText decodes the text parameter (raw, still percent-encoded) and checks
// it against sum, the md5 parameter. exact is true when the MD5 matched; body is
// then the MESSAGE body byte for byte. Otherwise body is the best reading, for
// the record, and the caller waits for the exact copy.
func DecodeText(raw, sum string) (body []byte, exact bool) {
	inner, ok := strings.CutPrefix(raw, TextSentinel)
	if ok {
		inner, ok = strings.CutSuffix(inner, TextSentinel)
	}
	if !ok {
		return []byte(unescape(raw)), false
	}
	parts, ambiguous, clean := splitText(inner)
	var want [md5.Size]byte
	if len(sum) != hex.EncodedLen(md5.Size) || !clean {
		return joinText(parts, nil), false
	}
	if _, err := hex.Decode(want[:], []byte(sum)); err != nil {
		return joinText(parts, nil), false
	}
	if lit, ok := settle(parts, ambiguous, want[:]); ok {
		return joinText(parts, lit), true
	}
	return joinText(parts, nil), false
}

// settle finds which ambiguous escapes (indexes into parts) were literal text:
// none, or up to textMaxLiterals of them, fewest first, within
// textSearchBudget. ok is false when no reading matched want.
func settle(parts []textPart, ambiguous []int, want []byte) (literal []int, ok bool) {
	size := 2 * len(TextSentinel)
	for _, p := range parts {
		size += len(p.b)
	}
	buf := make([]byte, 0, size+3*textMaxLiterals)
	budget := textSearchBudget
	hashes := func(lit []int) bool {
		budget -= size + 64 // a candidate costs its bytes and a fixed overhead
		buf = append(buf[:0], TextSentinel...)
		j := 0
		for i, p := range parts {
			if j < len(lit) && lit[j] == i {
				buf = append(buf, p.alt...)
				j++
				continue
			}
			buf = append(buf, p.b...)
		}
		buf = append(buf, TextSentinel...)
		sum := md5.Sum(buf)
		return bytes.Equal(sum[:], want)
	}
	if hashes(nil) {
		return nil, true
	}
	lit := make([]int, 0, textMaxLiterals)
	// pick chooses the n-th literal of lit from ambiguous[from:]; true ends the
	// search (found, or out of budget).
	var pick func(from, n int) bool
	pick = func(from, n int) bool {
		if len(lit) == n {
			ok = hashes(lit)
			return ok || budget <= 0
		}
		for i := from; i < len(ambiguous); i++ {
			lit = append(lit, ambiguous[i])
			if pick(i+1, n) {
				return true
			}
			lit = lit[:len(lit)-1]
		}
		return false
	}
	for n := 1; n <= min(textMaxLiterals, len(ambiguous)) && budget > 0; n++ {
		if pick(0, n) {
			break
		}
	}
	return lit, ok
}

// splitText cuts s into fixed runs and ambiguous escapes; ambiguous lists the
// indexes of the latter in parts. clean is false when s holds something
// FreeSWITCH's url_encode never writes (a '%' not followed by two upper-case hex
// digits, or a byte it escapes): the text was not made by it.
func splitText(s string) (parts []textPart, ambiguous []int, clean bool) {
	clean = true
	n := strings.Count(s, "%")
	parts = make([]textPart, 0, 2*n+1)
	ambiguous = make([]int, 0, n)
	dec := make([]byte, 0, len(s)) // every part's bytes, in one allocation
	start := 0                     // of the current fixed run in dec
	flush := func() {
		if len(dec) > start {
			parts = append(parts, textPart{b: dec[start:len(dec):len(dec)]})
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			clean = clean && !fsEscapes(c)
			dec = append(dec, c)
			continue
		}
		if i+2 >= len(s) || !isUpperHexDigit(s[i+1]) || !isUpperHexDigit(s[i+2]) {
			clean = false
			dec = append(dec, c)
			continue
		}
		v := unhex(s[i+1])<<4 | unhex(s[i+2])
		esc := s[i : i+3]
		i += 2
		if !fsEscapes(v) {
			dec = append(dec, esc...) // url_encode would have written v itself: literal text
			continue
		}
		flush()
		dec = append(dec, v)
		ambiguous = append(ambiguous, len(parts))
		parts = append(parts, textPart{b: dec[len(dec)-1 : len(dec) : len(dec)], alt: esc})
		start = len(dec)
	}
	flush()
	return parts, ambiguous, clean
}

// joinText builds a candidate body: the escapes at the indexes in literal read
// as text, every other one as its byte.
func joinText(parts []textPart, literal []int) []byte {
	n := 0
	for _, p := range parts {
		n += max(len(p.b), len(p.alt))
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, 0, n)
	j := 0
	for i, p := range parts {
		if j < len(literal) && literal[j] == i {
			b = append(b, p.alt...)
			j++
			continue
		}
		b = append(b, p.b...)
	}
	return b
}
