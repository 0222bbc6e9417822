package freeswitchconf

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func rendered(t *testing.T, o Options) map[string]File {
	t.Helper()
	files, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]File{}
	for _, f := range files {
		out[f.Path] = f
	}
	return out
}

func TestRenderDefaultsAreTheShippedFiles(t *testing.T) {
	got := rendered(t, Options{})
	disk := shippedFiles(t)
	if len(got) != len(disk) {
		t.Fatalf("rendered %d files, shipped %d", len(got), len(disk))
	}
	for _, path := range disk {
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[path].Data, want) {
			t.Errorf("%s differs from the shipped file", path)
		}
	}
	// The defaults spelled out give the same bytes.
	same := rendered(t, Options{HTTPAddr: "127.0.0.1:8484", ESLAddr: "127.0.0.1:8021", ESLPassword: "ClueCon"})
	for path, f := range got {
		if !bytes.Equal(same[path].Data, f.Data) {
			t.Errorf("%s: explicit defaults render differently", path)
		}
	}
}

// paramValues parses a rendered file and returns the value attributes by param name.
func paramValues(t *testing.T, data []byte) map[string]string {
	t.Helper()
	root, err := parseXML(data)
	if err != nil {
		t.Fatalf("rendered file does not parse: %v\n%s", err, data)
	}
	out := map[string]string{}
	for _, p := range root.all("param") {
		out[p.attrs["name"]] = p.attrs["value"]
	}
	return out
}

func TestRenderSettingsParseBack(t *testing.T) {
	const hostile = `p<&"'>$${x}${y} ü`
	o := Options{HTTPAddr: "[::1]:9090", User: "sip&silo", Password: hostile, ESLAddr: "127.0.0.2:8022", ESLPassword: hostile}
	got := rendered(t, o)

	curl := paramValues(t, got["autoload_configs/xml_curl.conf.xml"].Data)
	if want := "http://[::1]:9090/fs/chatplan?text=${url_encode(_${_body}_)}&md5=${md5(_${_body}_)}"; curl["gateway-url"] != want {
		t.Errorf("gateway-url = %q, want %q", curl["gateway-url"], want)
	}
	if want := "sip&silo:" + hostile; curl["gateway-credentials"] != want {
		t.Errorf("gateway-credentials = %q, want %q", curl["gateway-credentials"], want)
	}
	if !got["autoload_configs/xml_curl.conf.xml"].Secret {
		t.Errorf("xml_curl.conf.xml with credentials not marked secret")
	}

	es := paramValues(t, got["autoload_configs/event_socket.conf.xml"].Data)
	for name, want := range map[string]string{"listen-ip": "127.0.0.2", "listen-port": "8022", "password": hostile} {
		if es[name] != want {
			t.Errorf("event socket %s = %q, want %q", name, es[name], want)
		}
	}
	// FreeSWITCH's preprocessor works on the raw text: no $${ may survive there.
	for path, f := range got {
		if bytes.Contains(f.Data, []byte("$${")) {
			t.Errorf("%s: raw text holds $${, which FreeSWITCH's preprocessor would expand", path)
		}
	}
	// Everything else is untouched.
	def := rendered(t, Options{})
	for _, path := range []string{"chatplan/default.xml", "autoload_configs/modules.conf.xml.snippet",
		"sip_profiles/internal-ping-params.xml.snippet"} {
		if !bytes.Equal(got[path].Data, def[path].Data) {
			t.Errorf("%s changed", path)
		}
	}
}

func TestRenderWithoutCredentialsKeepsThemCommentedOut(t *testing.T) {
	got := rendered(t, Options{HTTPAddr: "10.0.0.5:8484"})
	data := got["autoload_configs/xml_curl.conf.xml"].Data
	if _, ok := paramValues(t, data)["gateway-credentials"]; ok {
		t.Errorf("gateway-credentials active without --user/--password")
	}
	if !bytes.Contains(data, []byte(credentialsLine)) {
		t.Errorf("commented-out credentials line missing")
	}
	if got["autoload_configs/xml_curl.conf.xml"].Secret {
		t.Errorf("xml_curl.conf.xml without credentials marked secret")
	}
}

func TestRenderRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"control character in password", Options{User: "u", Password: "a\nb"}},
		{"tab in esl password", Options{ESLPassword: "a\tb"}},
		{"DEL in user", Options{User: "u\x7f", Password: "p"}},
		{"invalid UTF-8", Options{User: "u", Password: "\xff"}},
		{"colon in user", Options{User: "a:b", Password: "p"}},
		{"user without password", Options{User: "u"}},
		{"password without user", Options{Password: "p"}},
		{"no port", Options{HTTPAddr: "127.0.0.1"}},
		{"port 0", Options{HTTPAddr: "127.0.0.1:0"}},
		{"expansion in host", Options{HTTPAddr: "${x}:80"}},
		{"path in host", Options{HTTPAddr: "a/b:80"}},
		{"esl on a name", Options{ESLAddr: "localhost:8021"}},
		{"esl port out of range", Options{ESLAddr: "127.0.0.1:70000"}},
		{"esl password with trailing space", Options{ESLPassword: "secret "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Render(tc.o); !errors.Is(err, ErrInvalid) {
				t.Errorf("Render(%+v) = %v, want ErrInvalid", tc.o, err)
			}
		})
	}
}

func TestChatplanURLFor(t *testing.T) {
	if got := ChatplanURLFor("127.0.0.1:8484"); got != ChatplanURL {
		t.Errorf("default = %q, want %q", got, ChatplanURL)
	}
	if got := ChatplanURLFor("192.0.2.1:80"); !strings.HasPrefix(got, "http://192.0.2.1:80/fs/chatplan?") {
		t.Errorf("got %q", got)
	}
}
