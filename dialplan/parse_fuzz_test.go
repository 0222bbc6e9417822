package dialplan

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any chatplan request parses or is refused as malformed, never
// panics; a lookup CheckMessage passes carries only what the store, the admin
// API and SIP can hold, and its answer renders. Seeds are FreeSWITCH's requests.
func FuzzParse(f *testing.F) {
	f.Add(capturedQuery, []byte(capturedForm))
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "xmlcurl", "*.http"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		head, form, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		line, _, _ := bytes.Cut(head, []byte("\r\n"))
		_, query, _ := strings.Cut(strings.Fields(string(line) + " x x")[1], "?")
		f.Add(query, form)
	}
	f.Fuzz(func(t *testing.T, query string, form []byte) {
		l, err := Parse(query, form)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v is not ErrMalformed", err)
			}
			return
		}
		if err := l.CheckMessage(); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("CheckMessage error %v is not ErrMalformed", err)
			}
			return
		}
		if len(l.Recipient()) > 2*MaxAddrPart+1 || len(l.CoreUUID) > MaxCoreUUID ||
			strings.ContainsFunc(l.Recipient()+l.Sender()+l.FromFull+l.Type, isControl) {
			t.Fatalf("CheckMessage passed an unstorable lookup: to %q", l.Recipient())
		}
		if _, err := Chatplan(l.Context, "01ABC"); err != nil {
			t.Fatalf("CheckMessage passed a context that cannot be answered: %v", err)
		}
	})
}
