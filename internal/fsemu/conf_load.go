package fsemu

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Conf is what FreeSWITCH takes from a configuration directory for the parts
// sipsilo touches: the modules it loads, mod_xml_curl's bindings, the event socket,
// the sofia profiles' params and the static chatplan. LoadConf reads it; Options
// applies it to a Switch.
type Conf struct {
	// Modules are the modules FreeSWITCH ends up with, in load order: modules.conf's
	// <load> lines, minus mod_xml_curl when it refuses to load (XMLCurlError).
	Modules []string
	// Bindings are the xml_curl bindings mod_xml_curl registers, in file order.
	Bindings []Binding
	// XMLCurlError is why mod_xml_curl fails to load ("" when it loads or is not
	// listed): FreeSWITCH then has no binding at all.
	XMLCurlError string
	ESL          ESLConf
	Profiles     []Profile

	chatplan *xnode // <section name="chatplan">, nil when there is none
	config   *xnode // <section name="configuration">
	dir      string // the conf directory it was read from
}

// Binding is one registered mod_xml_curl binding (mod_xml_curl.c do_config).
type Binding struct {
	Name        string
	URL         string
	Mask        string // the gateway-url's bindings attribute, "" when absent
	Credentials string // gateway-credentials, user:password
	Method      string
	Timeout     time.Duration // whole seconds; 0 means none
	DynamicURL  bool
}

// ESLConf is event_socket.conf as mod_event_socket reads it, defaults filled in.
type ESLConf struct {
	ListenIP, ListenPort, Password string
	ACLs                           []string // apply-inbound-acl, in order
}

// Addr is ip:port.
func (e ESLConf) Addr() string { return net.JoinHostPort(e.ListenIP, e.ListenPort) }

// Profile is one sofia profile from sofia.conf.
type Profile struct {
	Name   string
	Params [][2]string // <settings> params in order, names as written
}

// Param returns the value sofia ends up with: names compare case-insensitively
// and the last param of a name wins (sofia.c config_sofia).
func (p Profile) Param(name string) (string, bool) {
	v, ok := "", false
	for _, kv := range p.Params {
		if strings.EqualFold(kv[0], name) {
			v, ok = kv[1], true
		}
	}
	return v, ok
}

// Context is the profile's context param; unset, sofia uses "default" (verified
// on FreeSWITCH 1.10.12 at a start: TestRealFSCheckFS/no_context_param).
func (p Profile) Context() string {
	if v, ok := p.Param("context"); ok && v != "" {
		return v
	}
	return "default"
}

// sectionNames is switch_xml_parse_section_string's table.
var sectionNames = []string{"result", "config", "directory", "dialplan", "languages", "chatplan", "channels"}

// Covers reports whether the binding serves section: switch_xml_locate skips a
// binding whose mask shares no section with the request's, and a mask that names
// no section at all serves every section.
func (b Binding) Covers(section string) bool {
	mask := sectionMask(b.Mask)
	return mask == 0 || mask&sectionMask(section) != 0
}

// sectionMask is switch_xml_parse_section_string: a substring search, lowercased.
func sectionMask(s string) int {
	s = strings.ToLower(s)
	m := 0
	for i, n := range sectionNames {
		if strings.Contains(s, n) {
			m |= 1 << i
		}
	}
	return m
}

// LoadConf reads dir/freeswitch.xml the way FreeSWITCH does at start or reloadxml:
// preprocessed (includes, $${vars}), parsed as one document. A file that does not
// parse fails the whole load, as it fails FreeSWITCH's. Only *.xml files are
// included by the usual globs, so *.snippet files never count.
func LoadConf(dir string) (*Conf, error) {
	var buf bytes.Buffer
	if err := preprocess(filepath.Join(dir, "freeswitch.xml"), map[string]string{}, 0, &buf); err != nil {
		return nil, fmt.Errorf("fsemu: conf: %w", err)
	}
	root, err := parseDoc(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("fsemu: conf: freeswitch.xml after preprocessing: %w", err)
	}
	c := &Conf{
		dir:      dir,
		chatplan: root.findChild("section", "name", "chatplan"),
		config:   root.findChild("section", "name", "configuration"),
	}
	c.loadModules()
	c.loadESL()
	c.loadProfiles()
	if slices.Contains(c.Modules, "mod_xml_curl") {
		if err := c.loadXMLCurl(); err != nil {
			c.XMLCurlError = err.Error()
			c.Modules = slices.DeleteFunc(c.Modules, func(m string) bool { return m == "mod_xml_curl" })
		}
	}
	return c, nil
}

// configuration returns <configuration name="name">, as switch_xml_open_cfg finds it.
func (c *Conf) configuration(name string) *xnode {
	if c.config == nil {
		return nil
	}
	return c.config.findChild("configuration", "name", name)
}

func (c *Conf) loadModules() {
	cfg := c.configuration("modules.conf")
	if cfg == nil {
		return
	}
	for _, ms := range cfg.childrenNamed("modules") {
		for _, l := range ms.childrenNamed("load") {
			if m := l.attrSoft("module"); m != "" && !slices.Contains(c.Modules, m) {
				c.Modules = append(c.Modules, m)
			}
		}
	}
}

// loadESL is mod_event_socket's config(): param names compared exactly, defaults
// 127.0.0.1, 8021, ClueCon.
func (c *Conf) loadESL() {
	c.ESL = ESLConf{ListenIP: "127.0.0.1", ListenPort: "8021", Password: "ClueCon"}
	cfg := c.configuration("event_socket.conf")
	if cfg == nil {
		return
	}
	for _, s := range cfg.childrenNamed("settings") {
		for _, p := range s.childrenNamed("param") {
			v := p.attrSoft("value")
			switch p.attrSoft("name") {
			case "listen-ip":
				c.ESL.ListenIP = v
			case "listen-port":
				c.ESL.ListenPort = v
			case "password":
				c.ESL.Password = v
			case "apply-inbound-acl":
				c.ESL.ACLs = append(c.ESL.ACLs, v)
			}
		}
	}
}

func (c *Conf) loadProfiles() {
	cfg := c.configuration("sofia.conf")
	if cfg == nil {
		return
	}
	for _, ps := range cfg.childrenNamed("profiles") {
		for _, p := range ps.childrenNamed("profile") {
			prof := Profile{Name: p.attrSoft("name")}
			for _, s := range p.childrenNamed("settings") {
				for _, kv := range s.childrenNamed("param") {
					prof.Params = append(prof.Params, [2]string{kv.attrSoft("name"), kv.attrSoft("value")})
				}
			}
			c.Profiles = append(c.Profiles, prof)
		}
	}
}

// loadXMLCurl is mod_xml_curl.c do_config: a binding without gateway-url is
// skipped; no <bindings> or no binding registered makes the module refuse to load.
func (c *Conf) loadXMLCurl() error {
	cfg := c.configuration("xml_curl.conf")
	if cfg == nil {
		return errors.New("open of xml_curl.conf failed")
	}
	bs := cfg.childrenNamed("bindings")
	if len(bs) == 0 {
		return errors.New("Missing <bindings> tag!")
	}
	for _, bt := range bs[0].childrenNamed("binding") {
		b := Binding{Name: bt.attrSoft("name")}
		hasURL := false
		for _, p := range bt.childrenNamed("param") {
			name, val := strings.ToLower(p.attrSoft("name")), p.attrSoft("value")
			switch name {
			case "gateway-url":
				b.URL, b.Mask, hasURL = val, p.attrSoft("bindings"), true
			case "gateway-credentials":
				b.Credentials = val
			case "method":
				b.Method = val
			case "timeout":
				if n := atoi(val); n >= 0 { // negative: logged and ignored
					b.Timeout = time.Duration(n) * time.Second
				}
			case "use-dynamic-url":
				if switchTrue(val) {
					b.DynamicURL = true
				}
			}
		}
		if !hasURL {
			continue // "Binding has no url!"
		}
		c.Bindings = append(c.Bindings, b)
	}
	if len(c.Bindings) == 0 {
		return errors.New("no binding has a gateway-url")
	}
	return nil
}

// Profile returns the named profile.
func (c *Conf) Profile(name string) (Profile, bool) {
	for _, p := range c.Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// Options applies the configuration to base for a switch serving profile (default
// "internal"): the modules, the profile's context, the event socket's address and
// password, the chatplan binding and the static chatplan and configuration that
// xml_locate and the chatplan fall back to.
func (c *Conf) Options(base SwitchOptions, profile string) (SwitchOptions, error) {
	o := base
	o.Profile = or(profile, "internal")
	p, ok := c.Profile(o.Profile)
	if !ok {
		return o, fmt.Errorf("fsemu: conf: no sofia profile %q", o.Profile)
	}
	o.Context = p.Context()
	o.Modules = append([]string{}, c.Modules...)
	o.ESL.Addr = c.ESL.Addr()
	o.ESL.Password = c.ESL.Password
	if _, err := strconv.Atoi(c.ESL.ListenPort); err != nil {
		return o, fmt.Errorf("fsemu: conf: event socket listen-port %q", c.ESL.ListenPort)
	}
	x, err := c.chatplanBinding()
	if err != nil {
		return o, err
	}
	o.XMLCurl = x
	o.staticChatplan, o.staticConfig, o.confDir = c.chatplan, c.config, c.dir
	return o, nil
}

// chatplanBinding is the one binding that serves the chatplan, nil if none.
func (c *Conf) chatplanBinding() (*XMLCurl, error) {
	var x *XMLCurl
	for _, b := range c.Bindings {
		if !b.Covers("chatplan") {
			continue
		}
		if x != nil {
			return nil, errors.New("fsemu: conf: more than one binding serves the chatplan; the emulator runs one")
		}
		if b.Method != "" {
			return nil, fmt.Errorf("fsemu: conf: binding %q sets method; only the default POST is emulated", b.Name)
		}
		x = &XMLCurl{URL: b.URL, Timeout: b.Timeout, Credentials: b.Credentials,
			StaticURL: !b.DynamicURL, Sections: b.Mask}
	}
	return x, nil
}
