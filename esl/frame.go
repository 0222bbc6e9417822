package esl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Content types of the frames FreeSWITCH sends on an inbound socket (mod_event_socket.c).
const (
	typeAuthRequest = "auth/request"
	typeReply       = "command/reply"
	typeAPIResponse = "api/response"
	typeEventJSON   = "text/event-json"
	typeEventPlain  = "text/event-plain"
	typeDisconnect  = "text/disconnect-notice"
)

// Limits on what one frame may make us allocate. FreeSWITCH caps bodies at 16 MiB
// and header blocks at 10 MiB; an outer frame header is a few lines.
const (
	maxHeaderBytes = 64 << 10
	maxBodyBytes   = 16 << 20
)

// frame is one ESL message: an outer header block and, when it has a
// Content-Length, exactly that many bytes of body. Header values are raw.
type frame struct {
	headers []Header
	body    []byte
}

func (f *frame) get(name string) string {
	for _, h := range f.headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

func (f *frame) contentType() string { return f.get("Content-Type") }

// replyText is the text of a command/reply (Reply-Text) or an api/response (body).
func (f *frame) replyText() string {
	if f.contentType() == typeReply {
		return f.get("Reply-Text")
	}
	return string(f.body)
}

// readFrame reads one frame. FreeSWITCH ends lines with LF; a CR before it is
// dropped, as FreeSWITCH does with its own input. Blank lines before a header
// block are skipped. The body is sized only by the outer Content-Length: an
// event's inner Content-Length lives inside that body (testdata/esl, scenario 06's SMS::DELIVERY_REPORT).
func readFrame(r *bufio.Reader) (*frame, error) {
	f := &frame{}
	n := 0
	for {
		line, err := r.ReadSlice('\n')
		n += len(line)
		if errors.Is(err, bufio.ErrBufferFull) || n > maxHeaderBytes {
			return nil, errors.New("esl: frame header too large")
		}
		if err != nil {
			if errors.Is(err, io.EOF) && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			if len(f.headers) == 0 {
				continue
			}
			break
		}
		name, value, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("esl: malformed header line %q", s)
		}
		f.headers = append(f.headers, Header{Name: name, Value: strings.TrimLeft(value, " ")})
	}
	if cl := f.get("Content-Length"); cl != "" {
		size, err := strconv.Atoi(cl)
		if err != nil || size < 0 || size > maxBodyBytes {
			return nil, fmt.Errorf("esl: bad Content-Length %q", cl)
		}
		f.body = make([]byte, size)
		if _, err := io.ReadFull(r, f.body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return f, nil
}

// checkLine refuses text that would end the command line or a header early: an ESL
// command ends at the first LF and FreeSWITCH drops CRs, so a CR or LF in a
// caller's value would let it write headers or whole commands of its own
// (a defect eslgo has, docs/decisions.md §17).
func checkLine(what, s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("esl: %s contains CR or LF: %w", what, ErrBadInput)
	}
	return nil
}
