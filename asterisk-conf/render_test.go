package asteriskconf

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRenderDefaultsAreTheShippedFiles(t *testing.T) {
	files, err := Render(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("%d files", len(files))
	}
	for _, f := range files {
		shipped, err := Files.ReadFile(f.Path)
		if err != nil || !bytes.Equal(shipped, f.Data) {
			t.Errorf("%s differs from the shipped file (%v)", f.Path, err)
		}
		if f.Secret != (f.Path == "manager_sipsilo.conf") {
			t.Errorf("%s: secret %v", f.Path, f.Secret)
		}
	}
}

func TestRenderSettings(t *testing.T) {
	files, err := Render(Options{HTTPAddr: "[::1]:9000", AMISecret: "s3cr#t!"})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]string{}
	for _, f := range files {
		byPath[f.Path] = string(f.Data)
	}
	ext := byPath["extensions_sipsilo.conf"]
	if !strings.Contains(ext, "${CURL(http://[::1]:9000/ast/message?exten=") || strings.Contains(ext, "8484") {
		t.Errorf("extensions:\n%s", ext)
	}
	if !strings.Contains(ext, "["+Context+"]") || !strings.Contains(ext, `"${SIPSILO}" = "`+Owned+`"`) ||
		!strings.Contains(ext, "CURLOPT(httptimeout)=2)") {
		t.Errorf("extensions lacks the context, the owned branch or the timeout:\n%s", ext)
	}
	if m := byPath["manager_sipsilo.conf"]; !strings.Contains(m, "\nsecret = s3cr#t!\n") || !strings.Contains(m, "["+AMIUser+"]") {
		t.Errorf("manager:\n%s", m)
	}
	for _, mod := range Modules {
		if !strings.Contains(byPath["modules.conf.snippet"], "load => "+mod+"\n") {
			t.Errorf("modules snippet lacks %s", mod)
		}
	}
	if !strings.Contains(byPath["pjsip_sipsilo.conf.snippet"], "message_context = "+Context+"\n") {
		t.Errorf("pjsip snippet:\n%s", byPath["pjsip_sipsilo.conf.snippet"])
	}
}

func TestRenderRefusesUnfitValues(t *testing.T) {
	for _, o := range []Options{
		{HTTPAddr: "127.0.0.1"}, {HTTPAddr: "127.0.0.1:0"}, {HTTPAddr: "${EXTEN}:80"}, {HTTPAddr: "a/b:80"},
		{AMISecret: "semi;colon"}, {AMISecret: " lead"}, {AMISecret: "line\nbreak"},
	} {
		if _, err := Render(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
