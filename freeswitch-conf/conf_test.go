package freeswitchconf

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// shippedFiles lists the .xml and .snippet files under the embedded directories on disk.
func shippedFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"autoload_configs", "chatplan", "sip_profiles"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			out = append(out, filepath.ToSlash(path))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

func TestEveryFileParses(t *testing.T) {
	files := shippedFiles(t)
	if len(files) == 0 {
		t.Fatal("no files found")
	}
	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			if !strings.HasSuffix(path, ".xml") && !strings.HasSuffix(path, ".snippet") {
				t.Fatalf("unexpected file %s: ship .xml (install as is) or .snippet (merge by hand)", path)
			}
			root := parseFile(t, path)
			// Everything FreeSWITCH includes from autoload_configs/*.xml lands in the
			// configuration section, one <configuration name="x.conf"> per file.
			if strings.HasPrefix(path, "autoload_configs/") && strings.HasSuffix(path, ".xml") {
				if root.name != "configuration" || !strings.HasSuffix(root.attrs["name"], ".conf") {
					t.Errorf("root is <%s name=%q>, want <configuration name=\"….conf\">", root.name, root.attrs["name"])
				}
			}
		})
	}
}

func TestEmbeddedFilesMatchDisk(t *testing.T) {
	var embedded []string
	err := fs.WalkDir(Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		embedded = append(embedded, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(embedded)
	if got, want := embedded, shippedFiles(t); !slices.Equal(got, want) {
		t.Fatalf("embedded files = %v, want %v", got, want)
	}
}

func TestXMLCurlChatplanBinding(t *testing.T) {
	const path = "autoload_configs/xml_curl.conf.xml"
	root := parseFile(t, path)
	if got, want := root.attrs["name"], "xml_curl.conf"; got != want {
		t.Fatalf("configuration name = %q, want %q", got, want)
	}
	bindings := root.all("binding")
	if len(bindings) != 1 {
		t.Fatalf("%d bindings, want exactly 1", len(bindings))
	}
	b := bindings[0]
	if got, want := b.attrs["name"], "chatplan"; got != want {
		t.Errorf("binding name = %q, want %q", got, want)
	}

	// Every param name mod_xml_curl's do_config knows; anything else is a typo it ignores.
	known := []string{
		"gateway-url", "gateway-credentials", "auth-scheme", "disable-100-continue", "method",
		"timeout", "enable-cacert-check", "ssl-cert-path", "ssl-key-path", "ssl-key-password",
		"ssl-version", "ssl-cacert-file", "enable-ssl-verifyhost", "cookie-file",
		"use-dynamic-url", "enable-post-var", "bind-local", "response-max-bytes",
	}
	seen := map[string]int{}
	for _, p := range params(b) {
		name, value := p[0], p[1]
		seen[name]++
		if !slices.Contains(known, name) {
			t.Errorf("unknown xml_curl param %q", name)
		}
		switch name {
		case "method":
			t.Errorf("method = %q is set: FreeSWITCH sends it verbatim as the request method "+
				"(and anything but post switches to GET); leave it unset", value)
		case "use-dynamic-url":
			if !switchTrue(value) {
				t.Errorf("use-dynamic-url = %q, want true (the body travels in the URL)", value)
			}
		case "timeout":
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > 3 {
				t.Errorf("timeout = %q, want whole seconds in 1..3 (0 means no limit)", value)
			}
			if n != ChatplanTimeoutSeconds {
				t.Errorf("timeout = %d, ChatplanTimeoutSeconds = %d", n, ChatplanTimeoutSeconds)
			}
		case "gateway-credentials":
			t.Errorf("gateway-credentials is active; ship it commented out")
		}
	}
	for _, name := range []string{"gateway-url", "use-dynamic-url", "timeout"} {
		if seen[name] != 1 {
			t.Errorf("param %q appears %d times, want once", name, seen[name])
		}
	}

	for _, p := range b.kids("param") {
		if !strings.EqualFold(p.attrs["name"], "gateway-url") {
			continue
		}
		// A missing or unknown bindings mask makes the binding serve every section.
		if got, want := p.attrs["bindings"], "chatplan"; got != want {
			t.Errorf("gateway-url bindings = %q, want %q", got, want)
		}
		url := p.attrs["value"]
		for _, exp := range []string{"text=${url_encode(_${_body}_)}", "md5=${md5(_${_body}_)}"} {
			if !strings.Contains(url, exp) {
				t.Errorf("gateway-url %q does not carry %s", url, exp)
			}
		}
		if got, want := url, ChatplanURL; got != want {
			t.Errorf("gateway-url = %q, ChatplanURL = %q", got, want)
		}
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`<!--\s*<param name="gateway-credentials"`).Match(raw) {
		t.Errorf("no commented-out gateway-credentials line for the optional basic auth")
	}
}

func TestEventSocket(t *testing.T) {
	root := parseFile(t, "autoload_configs/event_socket.conf.xml")
	if got, want := root.attrs["name"], "event_socket.conf"; got != want {
		t.Fatalf("configuration name = %q, want %q", got, want)
	}
	settings := root.kids("settings")
	if len(settings) != 1 {
		t.Fatalf("%d <settings>, want 1", len(settings))
	}
	// mod_event_socket compares these names case-sensitively.
	got := map[string][]string{}
	for _, p := range settings[0].kids("param") {
		got[p.attrs["name"]] = append(got[p.attrs["name"]], p.attrs["value"])
	}
	host, port, _ := strings.Cut(ESLAddress, ":")
	want := map[string][]string{
		"listen-ip":         {host},
		"listen-port":       {port},
		"password":          {ESLPassword},
		"apply-inbound-acl": {"loopback.auto"},
		"nat-map":           {"false"},
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s = %q, want %q", name, got[name], w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected param %q", name)
		}
	}
}

// fallbackSetData is the only action data the fallback chatplan may carry: a constant
// sipsilo_* marker. FreeSWITCH expands ${…} (API calls included) in action data, so no
// variables, and nothing the sender controls (Decision 10).
var fallbackSetData = regexp.MustCompile(`^sipsilo_[a-z_]+=[a-z0-9_]+$`)

func TestFallbackChatplan(t *testing.T) {
	const path = "chatplan/default.xml"
	root := parseFile(t, path)
	if root.name != "include" {
		t.Fatalf("root is <%s>, want <include>", root.name)
	}
	var public *node
	for _, c := range root.kids("context") {
		switch c.attrs["name"] {
		case FallbackContext:
			public = c
		case "default":
			t.Errorf("context \"default\" present: this file replaces vanilla's demo context")
		}
	}
	if public == nil {
		t.Fatalf("no context %q (the internal profile's context)", FallbackContext)
	}
	if len(public.kids("extension")) == 0 {
		t.Fatalf("context %q has no extension", FallbackContext)
	}

	var actions []*node
	actions = append(actions, root.all("action")...)
	actions = append(actions, root.all("anti-action")...)
	marked := false
	for _, a := range actions {
		app, data := a.attrs["application"], a.attrs["data"]
		switch app {
		case "final":
			t.Errorf("final action: FreeSWITCH would not deliver the message itself")
		case "reply":
			t.Errorf("reply action %q: the fallback must not echo (vanilla's demo did)", data)
		case "set":
			if !fallbackSetData.MatchString(data) {
				t.Errorf("set %q: want a constant sipsilo_*=value marker", data)
			}
			if data == FallbackMarker+"=true" {
				marked = true
			}
		default:
			t.Errorf("action %s(%s): the fallback only sets a marker", app, data)
		}
		if strings.Contains(data, "$") {
			t.Errorf("action data %q contains '$': FreeSWITCH would expand it", data)
		}
	}
	if !marked {
		t.Errorf("no set %s=true action", FallbackMarker)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Vanilla's echo, in case it comes back in another shape than a reply action.
	if bytes.Contains(raw, []byte(`data="Hello, you said`)) {
		t.Errorf("vanilla echo text found")
	}
}

func TestPingParams(t *testing.T) {
	root := parseFile(t, "sip_profiles/internal-ping-params.xml.snippet")
	if len(root.children) != len(root.kids("param")) {
		t.Fatalf("the snippet must hold only <param> elements (it is pasted into <settings>)")
	}
	known := []string{
		"all-reg-options-ping", "nat-options-ping", "ping-mean-interval", "ping-thread-frequency",
		"sip-user-ping-max", "sip-user-ping-min", "unregister-on-options-fail",
	}
	// sofia reads params in order and the last one of a name wins.
	last := map[string]string{}
	for _, p := range params(root) {
		name, value := p[0], p[1]
		if !slices.Contains(known, name) {
			t.Errorf("unexpected param %q", name)
		}
		if name == "unregister-on-options-fail" && switchTrue(value) {
			t.Errorf("unregister-on-options-fail = %q: it unregisters phones that answer OPTIONS "+
				"with 405/501 (Decision 6)", value)
		}
		last[name] = value
	}

	if !switchTrue(last["all-reg-options-ping"]) && !switchTrue(last["nat-options-ping"]) &&
		!strings.EqualFold(last["nat-options-ping"], "udp-only") {
		t.Errorf("neither all-reg-options-ping nor nat-options-ping enabled: no sip_user_state events")
	}
	interval, err := strconv.Atoi(last["ping-mean-interval"])
	if err != nil || interval < 1 {
		t.Errorf("ping-mean-interval = %q, want a positive number of seconds", last["ping-mean-interval"])
	}
	maxCount, errMax := strconv.Atoi(last["sip-user-ping-max"])
	minCount, errMin := strconv.Atoi(last["sip-user-ping-min"])
	if errMax != nil || errMin != nil || minCount < 1 || maxCount < minCount {
		t.Errorf("sip-user-ping-max = %q, sip-user-ping-min = %q, want 1 <= min <= max",
			last["sip-user-ping-max"], last["sip-user-ping-min"])
	}
}

func TestModulesSnippet(t *testing.T) {
	root := parseFile(t, "autoload_configs/modules.conf.xml.snippet")
	var modules []string
	for _, l := range root.children {
		if l.name != "load" {
			t.Fatalf("unexpected <%s>: the snippet holds <load> lines only", l.name)
		}
		m := l.attrs["module"]
		if slices.Contains(modules, m) {
			t.Errorf("module %s listed twice", m)
		}
		modules = append(modules, m)
	}
	for _, m := range []string{"mod_xml_curl", "mod_sms", "mod_event_socket", "mod_commands", "mod_dptools"} {
		if !slices.Contains(modules, m) {
			t.Errorf("%s missing", m)
		}
	}
	// Vanilla order: XML interfaces first, applications (mod_sms) last.
	if slices.Index(modules, "mod_xml_curl") != 0 {
		t.Errorf("mod_xml_curl is not first: %v", modules)
	}
	if slices.Index(modules, "mod_sms") != len(modules)-1 {
		t.Errorf("mod_sms is not last: %v", modules)
	}
}
