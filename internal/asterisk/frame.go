// Package asterisk is sipsilo's Asterisk adapter: an AMI client (login,
// actions matched by ActionID, list actions, events, reconnect with backoff,
// bounded frames, deadlines) and the translation of AMI's contact and peer
// status into presence events, with the contact list read again after every
// (re)connection. relay and presence do not import it; the daemon wires it.
package asterisk

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
)

// Field is one "Key: Value" line of an AMI frame.
type Field struct{ Key, Value string }

// Message is one AMI frame (a response or an event): its fields in order,
// repeated keys kept (a Command's Output lines).
type Message struct{ Fields []Field }

// Get returns the first value of key (case-insensitive), "" if none.
func (m Message) Get(key string) string {
	for _, f := range m.Fields {
		if strings.EqualFold(f.Key, key) {
			return f.Value
		}
	}
	return ""
}

// All returns every value of key, in order.
func (m Message) All(key string) []string {
	var out []string
	for _, f := range m.Fields {
		if strings.EqualFold(f.Key, key) {
			out = append(out, f.Value)
		}
	}
	return out
}

// Limits on what one frame may hold: AMI's own lines stay under 1 KiB, a
// Command's output lines can be longer.
const (
	maxLine   = 64 << 10
	maxFields = 4096
)

// ErrFrame is wrapped by every error about a malformed or oversized frame;
// the connection is dropped and made again.
var ErrFrame = errors.New("asterisk: bad AMI frame")

// readLine reads one line without its CR LF, at most maxLine bytes.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		if len(b)+len(chunk) > maxLine {
			return "", fmt.Errorf("%w: line over %d bytes", ErrFrame, maxLine)
		}
		b = append(b, chunk...)
		if !isPrefix {
			return string(b), nil
		}
	}
}

// readMessage reads one frame: lines up to an empty one. A line without a
// colon (a Command's old-style output) is kept as an "Output" value.
func readMessage(r *bufio.Reader) (Message, error) {
	var m Message
	for {
		line, err := readLine(r)
		if err != nil {
			return m, err
		}
		if line == "" {
			if len(m.Fields) == 0 {
				continue // stray blank line between frames
			}
			return m, nil
		}
		if len(m.Fields) == maxFields {
			return m, fmt.Errorf("%w: over %d fields", ErrFrame, maxFields)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			m.Fields = append(m.Fields, Field{"Output", line})
			continue
		}
		m.Fields = append(m.Fields, Field{strings.TrimSpace(k), strings.TrimLeft(v, " ")})
	}
}

// writeAction renders an action; values must not hold CR or LF, which would
// end the field or the frame.
func writeAction(w *bufio.Writer, fields []Field) error {
	for _, f := range fields {
		if strings.ContainsAny(f.Key, "\r\n:") || strings.ContainsAny(f.Value, "\r\n") {
			return fmt.Errorf("asterisk: field %q holds a line break", f.Key)
		}
		w.WriteString(f.Key)
		w.WriteString(": ")
		w.WriteString(f.Value)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	return w.Flush()
}
