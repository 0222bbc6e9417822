package fsemu

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	freeswitchconf "github.com/sipsilo/sipsilo/freeswitch-conf"
)

// installed renders sipsilo's files with o and installs them into a fresh conf
// directory, as an operator following freeswitch-conf/README.md would.
func installed(t *testing.T, o freeswitchconf.Options, in Install) string {
	t.Helper()
	files, err := freeswitchconf.Render(o)
	if err != nil {
		t.Fatal(err)
	}
	from := t.TempDir()
	for _, f := range files {
		p := filepath.Join(from, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := InstallConf(dir, from, in); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadConf(t *testing.T, dir string) *Conf {
	t.Helper()
	c, err := LoadConf(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadConfShippedFiles(t *testing.T) {
	c := loadConf(t, installed(t, freeswitchconf.Options{}, Install{}))
	for _, m := range []string{"mod_xml_curl", "mod_event_socket", "mod_commands", "mod_dptools", "mod_sms", "mod_sofia"} {
		if !slices.Contains(c.Modules, m) {
			t.Errorf("module %s not loaded: %v", m, c.Modules)
		}
	}
	if c.XMLCurlError != "" {
		t.Errorf("mod_xml_curl refused: %s", c.XMLCurlError)
	}
	if len(c.Bindings) != 1 {
		t.Fatalf("bindings = %+v, want 1", c.Bindings)
	}
	b := c.Bindings[0]
	want := Binding{Name: "chatplan", URL: freeswitchconf.ChatplanURL, Mask: "chatplan",
		Timeout: freeswitchconf.ChatplanTimeoutSeconds * time.Second, DynamicURL: true}
	if b != want {
		t.Errorf("binding = %+v, want %+v", b, want)
	}
	if !b.Covers("chatplan") || b.Covers("directory") || b.Covers("configuration") {
		t.Errorf("binding mask %q covers the wrong sections", b.Mask)
	}
	if got := (ESLConf{ListenIP: "127.0.0.1", ListenPort: "8021", Password: "ClueCon", ACLs: []string{"loopback.auto"}}); c.ESL.Addr() != got.Addr() ||
		c.ESL.Password != got.Password || !slices.Equal(c.ESL.ACLs, got.ACLs) {
		t.Errorf("event socket = %+v", c.ESL)
	}
	if len(c.Profiles) != 1 {
		t.Fatalf("profiles = %+v: a .snippet was included or the profile is missing", c.Profiles)
	}
	p, _ := c.Profile("internal")
	for name, want := range map[string]string{
		"context": "public", "all-reg-options-ping": "true", "ping-mean-interval": "10",
		"sip-user-ping-max": "1", "sip-user-ping-min": "1", "unregister-on-options-fail": "false",
		"presence-hosts": "127.0.0.1", // $${domain}, set in freeswitch.xml
	} {
		if got, _ := p.Param(name); got != want {
			t.Errorf("internal %s = %q, want %q", name, got, want)
		}
	}
	var names []string
	for _, cfg := range c.config.childrenNamed("configuration") {
		names = append(names, cfg.attrSoft("name"))
	}
	slices.Sort(names)
	if want := []string{"event_socket.conf", "modules.conf", "sofia.conf", "xml_curl.conf"}; !slices.Equal(names, want) {
		t.Errorf("configurations = %v, want %v (only *.xml files are included)", names, want)
	}
	if c.chatplan.findChild("context", "name", "public") == nil || c.chatplan.findChild("context", "name", "default") != nil {
		t.Errorf("static chatplan contexts wrong")
	}
}

func TestLoadConfAsFreeSWITCHWould(t *testing.T) {
	t.Run("a file that does not parse fails the load", func(t *testing.T) {
		dir := installed(t, freeswitchconf.Options{}, Install{})
		os.WriteFile(filepath.Join(dir, "autoload_configs", "broken.conf.xml"), []byte(`<configuration name="x.conf">`), 0o644)
		if _, err := LoadConf(dir); err == nil {
			t.Fatal("loaded a broken configuration")
		}
	})
	t.Run("no binding with a url: mod_xml_curl does not load", func(t *testing.T) {
		dir := installed(t, freeswitchconf.Options{}, Install{})
		p := filepath.Join(dir, "autoload_configs", "xml_curl.conf.xml")
		data, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(data, []byte(`name="gateway-url"`), []byte(`name="gateway-uri"`), 1), 0o644)
		c := loadConf(t, dir)
		if c.XMLCurlError == "" || slices.Contains(c.Modules, "mod_xml_curl") || len(c.Bindings) != 0 {
			t.Errorf("mod_xml_curl loaded with no usable binding: %+v", c)
		}
	})
	t.Run("no bindings attribute serves every section", func(t *testing.T) {
		dir := installed(t, freeswitchconf.Options{}, Install{})
		p := filepath.Join(dir, "autoload_configs", "xml_curl.conf.xml")
		data, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(data, []byte(` bindings="chatplan"/>`), []byte("/>"), 1), 0o644)
		b := loadConf(t, dir).Bindings[0]
		if !b.Covers("directory") || !b.Covers("chatplan") {
			t.Errorf("binding without mask %q does not cover everything", b.Mask)
		}
	})
	t.Run("a dropped module is not loaded", func(t *testing.T) {
		c := loadConf(t, installed(t, freeswitchconf.Options{}, Install{Drop: []string{"mod_sms"}}))
		if slices.Contains(c.Modules, "mod_sms") {
			t.Errorf("mod_sms loaded: %v", c.Modules)
		}
	})
	t.Run("a .snippet copied under a .xml name is included", func(t *testing.T) {
		dir := installed(t, freeswitchconf.Options{}, Install{})
		data, _ := os.ReadFile(filepath.Join(dir, "sip_profiles", "internal-ping-params.xml.snippet"))
		// The pitfall the README warns about: the params land outside any profile.
		os.WriteFile(filepath.Join(dir, "sip_profiles", "ping.xml"), []byte("<include>\n"+string(data)+"</include>\n"), 0o644)
		c := loadConf(t, dir)
		if len(c.Profiles) != 1 {
			t.Errorf("profiles = %d", len(c.Profiles))
		}
		if got := len(c.configuration("sofia.conf").childrenNamed("profiles")[0].childrenNamed("param")); got == 0 {
			t.Errorf("the stray params vanished instead of landing in <profiles>")
		}
	})
}

// api runs one ESL api command with password and returns the body.
func api(t *testing.T, addr, password, cmd string) string {
	t.Helper()
	c := dialESL(t, addr)
	c.expect(authRequest)
	c.send("auth " + password + "\n\n")
	c.expect(accepted)
	c.send("api " + cmd + "\n\n")
	f := c.mustFrame()
	_, body, _ := strings.Cut(string(f), "\n\n")
	return body
}

func switchFromConf(t *testing.T, dir string) *Switch {
	t.Helper()
	opts, err := loadConf(t, dir).Options(SwitchOptions{}, "internal")
	if err != nil {
		t.Fatal(err)
	}
	return newSwitch(t, opts)
}

func TestSwitchFromConf(t *testing.T) {
	var mu sync.Mutex
	var forms []url.Values
	var auths []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		forms = append(forms, r.PostForm)
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.PostForm.Get("tag_name") == "context" {
			w.Write([]byte(`<document type="freeswitch/xml"><section name="chatplan"><context name="` +
				r.PostForm.Get("key_value") + `"/></section></document>`))
			return
		}
		w.Write([]byte(`<document type="freeswitch/xml"><section name="result"><result status="not found"/></section></document>`))
	}))
	defer hs.Close()
	esl := freePortFsemu(t)
	dir := installed(t, freeswitchconf.Options{HTTPAddr: strings.TrimPrefix(hs.URL, "http://"), User: "u", Password: `p&"<`,
		ESLAddr: esl, ESLPassword: "s3cret"}, Install{Context: "default"})
	s := switchFromConf(t, dir)
	if s.ESL().Addr() != esl {
		t.Fatalf("ESL on %s, want %s", s.ESL().Addr(), esl)
	}
	if got := api(t, esl, "s3cret", "module_exists mod_sms"); got != "true" {
		t.Errorf("module_exists mod_sms = %q", got)
	}
	if got := api(t, esl, "s3cret", "module_exists mod_nonsense"); got != "false" {
		t.Errorf("module_exists mod_nonsense = %q", got)
	}
	if got := api(t, esl, "s3cret", "sofia status profile internal"); !strings.Contains(got, "\nContext          \tdefault\n") {
		t.Errorf("sofia status lacks the profile's context:\n%s", got)
	}
	if got := api(t, esl, "s3cret", "sofia xmlstatus profile internal"); !strings.Contains(got, "\n    <context>default</context>\n") {
		t.Errorf("sofia xmlstatus lacks the profile's context:\n%s", got)
	}
	if got := api(t, esl, "s3cret", "sofia status profile external"); got != "Invalid Profile!\n" {
		t.Errorf("unknown profile: %q", got)
	}
	// xml_locate through the binding: the form and the credentials FreeSWITCH sends.
	got := api(t, esl, "s3cret", "xml_locate chatplan context name probe-42")
	if !strings.Contains(got, `<context name="probe-42">`) {
		t.Errorf("xml_locate through the binding = %q", got)
	}
	mu.Lock()
	f, auth := forms[0], auths[0]
	mu.Unlock()
	for k, v := range map[string]string{"section": "chatplan", "tag_name": "context", "key_name": "name", "key_value": "probe-42",
		"Event-Name": "REQUEST_PARAMS", "tag": "context", "tag_attr_name": "name", "tag_attr_val": "probe-42",
		"Event-Calling-Function": "xml_locate_function"} {
		if f.Get(k) != v {
			t.Errorf("form %s = %q, want %q (form %v)", k, f.Get(k), v, f)
		}
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte(`u:p&"<`)); auth != want {
		t.Errorf("Authorization = %q, want %q", auth, want)
	}
	// The static chatplan answers what the binding does not.
	if got := api(t, esl, "s3cret", "xml_locate chatplan extension name x"); got != "can't find anything\n" {
		t.Errorf("xml_locate of nothing = %q", got)
	}
	// The inbound MESSAGE carries the profile's context.
	u0, u1 := newUA(t, s, "1000"), newUA(t, s, "1001")
	register(t, u1)
	if code, err := u0.SendMessage(testCtx(t), "1001", "text/plain", []byte("hi")); err != nil || code != 202 {
		t.Fatalf("SendMessage = %d, %v", code, err)
	}
	select {
	case r := <-u1.Received():
		if string(r.Body) != "hi" {
			t.Errorf("delivered %q", r.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered after the binding said not found")
	}
	mu.Lock()
	last := forms[len(forms)-1]
	mu.Unlock()
	if last.Get("context") != "default" || last.Get("section") != "chatplan" {
		t.Errorf("chatplan lookup context = %q", last.Get("context"))
	}
}

func TestSwitchStaticChatplanAndMissingModules(t *testing.T) {
	esl := freePortFsemu(t)
	dir := installed(t, freeswitchconf.Options{HTTPAddr: freePortFsemu(t), ESLAddr: esl}, // nobody listens on HTTP
		Install{Drop: []string{"mod_sms", "mod_dptools"}})
	s := switchFromConf(t, dir)
	if got := api(t, esl, "ClueCon", "module_exists mod_sms"); got != "false" {
		t.Errorf("module_exists mod_sms = %q", got)
	}
	if got := api(t, esl, "ClueCon", "chat sip|a@b|c@d|x"); got != "-ERR chat Command not found!\n" {
		t.Errorf("chat without mod_dptools = %q", got)
	}
	got := api(t, esl, "ClueCon", "xml_locate chatplan context name public")
	if !strings.Contains(got, `<context name="public">`) || !strings.Contains(got, "sipsilo_static_chatplan=true") {
		t.Errorf("static public context = %q", got)
	}
	got = api(t, esl, "ClueCon", "xml_locate configuration configuration name sofia.conf")
	if !strings.Contains(got, `<param name="unregister-on-options-fail" value="false">`) {
		t.Errorf("sofia.conf from the static XML = %q", got)
	}
	_ = s
}

func freePortFsemu(t *testing.T) string {
	t.Helper()
	s, err := NewESLServer(ESLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	s.Close()
	return addr
}

// TestSwitchFromConfFallsBackToStaticChatplan: sipsilo down, so FreeSWITCH runs the
// shipped chatplan/default.xml: the message goes out as stock, marked.
func TestSwitchFromConfFallsBackToStaticChatplan(t *testing.T) {
	s := switchFromConf(t, installed(t, freeswitchconf.Options{HTTPAddr: freePortFsemu(t), ESLAddr: freePortFsemu(t)}, Install{}))
	u0, u1 := newUA(t, s, "1000"), newUA(t, s, "1001")
	register(t, u1)
	c := login(t, s.ESL(), "event json MESSAGE")
	if code, err := u0.SendMessage(testCtx(t), "1001", "text/plain", []byte("while sipsilo is down")); err != nil || code != 202 {
		t.Fatalf("SendMessage = %d, %v", code, err)
	}
	select {
	case r := <-u1.Received():
		if string(r.Body) != "while sipsilo is down" {
			t.Errorf("delivered %q", r.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered as stock")
	}
	ev := mustEvent(t, c)
	if ev.Get(freeswitchconf.FallbackMarker) != "true" || ev.Get("final_delivery") != "" {
		t.Errorf("MESSAGE event: marker %q, final_delivery %q", ev.Get(freeswitchconf.FallbackMarker), ev.Get("final_delivery"))
	}
}
