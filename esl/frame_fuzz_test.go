package esl

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadFrame: whatever FreeSWITCH (or something posing as it) sends, the frame
// reader and the JSON event parser return frames or errors, never panic, and read
// each frame within what the input holds. Seeds are captured sessions.
func FuzzReadFrame(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.raw"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Content-Length: 99999999999\n\n"))
	f.Add([]byte("Content-Type: text/event-json\nContent-Length: 2\n\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		// Every frame but a failing one consumes at least one line, so this
		// ends within len(data)+1 rounds.
		for i := 0; i <= len(data); i++ {
			fr, err := readFrame(r)
			if err != nil {
				return
			}
			if len(fr.headers) == 0 {
				t.Fatal("frame without headers")
			}
			if fr.contentType() == typeEventJSON {
				if e, err := ParseJSON(fr.body); err == nil {
					e.Get("Event-Name")
					e.GetAll("variable_x")
				}
			}
		}
		t.Fatalf("more frames than bytes in %d bytes", len(data))
	})
}
