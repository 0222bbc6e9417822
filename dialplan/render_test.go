package dialplan

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
)

type doc struct {
	XMLName  xml.Name `xml:"document"`
	Type     string   `xml:"type,attr"`
	Sections []struct {
		Name   string `xml:"name,attr"`
		Result *struct {
			Status string `xml:"status,attr"`
		} `xml:"result"`
		Contexts []struct {
			Name       string `xml:"name,attr"`
			Extensions []struct {
				Conditions []struct {
					Field   string `xml:"field,attr"`
					Actions []struct {
						App  string `xml:"application,attr"`
						Data string `xml:"data,attr"`
					} `xml:"action"`
				} `xml:"condition"`
			} `xml:"extension"`
		} `xml:"context"`
	} `xml:"section"`
}

func parseDoc(t testing.TB, b []byte) doc {
	t.Helper()
	var d doc
	if err := xml.Unmarshal(b, &d); err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, b)
	}
	return d
}

func TestNotFoundParses(t *testing.T) {
	d := parseDoc(t, NotFound())
	if len(d.Sections) != 1 || d.Sections[0].Name != "result" || d.Sections[0].Result == nil ||
		d.Sections[0].Result.Status != "not found" {
		t.Fatalf("not-found document: %+v", d)
	}
}

// checkChatplan asserts the one shape sipsilo answers: context as given, one
// always-matching condition, set sipsilo_id=<id> then final.
func checkChatplan(t testing.TB, b []byte, context, id string) {
	t.Helper()
	d := parseDoc(t, b)
	if len(d.Sections) != 1 || d.Sections[0].Name != "chatplan" || len(d.Sections[0].Contexts) != 1 {
		t.Fatalf("sections: %+v", d.Sections)
	}
	c := d.Sections[0].Contexts[0]
	if c.Name != context {
		t.Fatalf("context = %q, want %q", c.Name, context)
	}
	if len(c.Extensions) != 1 || len(c.Extensions[0].Conditions) != 1 {
		t.Fatalf("extensions: %+v", c.Extensions)
	}
	cond := c.Extensions[0].Conditions[0]
	if cond.Field != "" || len(cond.Actions) != 2 {
		t.Fatalf("condition: %+v", cond)
	}
	if a := cond.Actions[0]; a.App != "set" || a.Data != "sipsilo_id="+id {
		t.Fatalf("first action: %+v", a)
	}
	if a := cond.Actions[1]; a.App != "final" || a.Data != "" {
		t.Fatalf("second action: %+v", a)
	}
}

func TestChatplanEscapesHostileContext(t *testing.T) {
	hostile := []string{
		"public",
		`a"b'c<d>e&f`,
		`]]><X-PRE-PROCESS cmd="exec" data="touch /tmp/pwned"/>`,
		"${system(id)} $${hostname}",
		"line1\nline2\r\ttab",
		"ümlaut €",
	}
	for _, ctx := range hostile {
		b, err := Chatplan(ctx, "01JFIXTURE0000000000000001")
		if err != nil {
			t.Fatalf("%q: %v", ctx, err)
		}
		checkChatplan(t, b, ctx, "01JFIXTURE0000000000000001")
		s := string(b)
		if strings.Contains(s, "$") || strings.Contains(s, "<X-PRE") {
			t.Fatalf("%q: preprocessor-visible text in answer:\n%s", ctx, s)
		}
	}
}

func TestChatplanRefusesWhatXMLCannotHold(t *testing.T) {
	for _, ctx := range []string{"a\x00b", "bell\x07", "\xff\xfe", "\ufffe"} {
		if _, err := Chatplan(ctx, "01J"); !errors.Is(err, ErrUnrenderable) {
			t.Errorf("context %q: err = %v, want ErrUnrenderable", ctx, err)
		}
	}
	for _, id := range []string{"", "a b", "${x}", `x"/>`} {
		if _, err := Chatplan("public", id); !errors.Is(err, ErrUnrenderable) {
			t.Errorf("id %q: err = %v, want ErrUnrenderable", id, err)
		}
	}
}

// FuzzChatplan: whatever the context, the answer either is refused or parses back to
// exactly that context with nothing the FreeSWITCH preprocessor would act on.
func FuzzChatplan(f *testing.F) {
	for _, s := range []string{"public", "<&>\"'", "$${x}", "\n\r\t", "\xff", "]]>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ctx string) {
		b, err := Chatplan(ctx, "01ABC")
		if err != nil {
			if !errors.Is(err, ErrUnrenderable) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		checkChatplan(t, b, ctx, "01ABC")
		if strings.Contains(string(b), "$") {
			t.Fatalf("raw $ in answer")
		}
	})
}
