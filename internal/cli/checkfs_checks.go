package cli

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/sipsilo/sipsilo/esl"
	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/handlers"
)

// moduleFixes says, per module sipsilo needs, why and how to load it.
var moduleFixes = []struct{ name, why string }{
	{"mod_commands", "provides module_exists, xml_locate and the url_encode and md5 APIs the chatplan URL uses"},
	{"mod_sofia", "the SIP endpoint"},
	{"mod_xml_curl", "asks sipsilo for the chatplan (section \"XML Interfaces\"); listed but not loaded means " +
		"autoload_configs/xml_curl.conf.xml has no <bindings> or no binding with a gateway-url (FreeSWITCH refuses to load it)"},
	{"mod_sms", "runs the chatplan for every MESSAGE (section \"Applications\"); without it FreeSWITCH never asks sipsilo"},
	{"mod_dptools", "provides the chat API sipsilo delivers with"},
}

// checkModules asks module_exists (mod_commands.c: "true" or "false") for each.
func (c *checkFS) checkModules(ctx context.Context) {
	for _, m := range moduleFixes {
		out, err := c.api(ctx, "module_exists "+m.name)
		if errors.Is(err, esl.ErrCommand) && m.name == "mod_commands" {
			c.fail("module mod_commands not loaded (module_exists is not there): it "+m.why,
				`add <load module="mod_commands"/> to autoload_configs/modules.conf.xml, then fs_cli -x 'load mod_commands'`)
			c.skip("other modules: not checkable without mod_commands")
			return
		}
		switch {
		case err != nil:
			c.fail(fmt.Sprintf("module %s: %v", m.name, err))
		case strings.TrimSpace(out) == "true":
			c.ok("module %s loaded", m.name)
		default:
			c.fail("module "+m.name+" not loaded: it "+m.why,
				fmt.Sprintf(`uncomment or add <load module="%s"/> in autoload_configs/modules.conf.xml (see modules.conf.xml.snippet), then fs_cli -x 'load %s'`, m.name, m.name))
		}
	}
}

// checkBinding looks up a chatplan context only sipsilo can know, through
// FreeSWITCH's bindings (mod_commands xml_locate → switch_xml_locate →
// mod_xml_curl → sipsilo's /fs/chatplan): seeing the nonce back proves the path.
func (c *checkFS) checkBinding(ctx context.Context) {
	name := handlers.ProbePrefix + newNonce()
	out, err := c.api(ctx, "xml_locate chatplan context name "+name)
	if err == nil && strings.Contains(out, `name="`+name+`"`) {
		c.ok("chatplan binding: FreeSWITCH's xml_curl binding reached sipsilo and got its answer")
		return
	}
	what := "chatplan binding: FreeSWITCH did not get sipsilo's answer"
	switch {
	case err != nil:
		what += fmt.Sprintf(" (%v)", err)
	default:
		what += fmt.Sprintf(" (xml_locate said %q)", strings.TrimSpace(firstLine(out)))
	}
	fixes := []string{}
	b, urls := c.configuredBinding(ctx)
	if b != "" {
		fixes = append(fixes, "FreeSWITCH's XML has "+b)
	}
	if c.httpAddr != "" && len(urls) > 0 && !slices.Contains(urls, "http://"+c.httpAddr+handlers.ChatplanPath) {
		fixes = append(fixes, "the chatplan gateway-url points to "+strings.Join(urls, ", ")+", not to sipsilo at "+c.httpAddr)
	}
	fixes = append(fixes, c.directProbe(ctx, name)...)
	fixes = append(fixes, `autoload_configs/xml_curl.conf.xml: the FIRST binding serving the chatplan must be `+
		`<param name="gateway-url" value="`+conf.ChatplanURLAttr(conf.ChatplanURLFor(valueOr(c.httpAddr, "<sipsilo's --http>")))+`" bindings="chatplan"/>, `+
		`with gateway-credentials when sipsilo runs with --chatplan-user; apply with fs_cli -x 'reload mod_xml_curl'`)
	c.fail(what, fixes...)
}

// configuredBinding describes the chatplan binding in FreeSWITCH's XML registry.
// mod_xml_curl read the file when it was loaded: after a reloadxml the two differ
// until `reload mod_xml_curl`.
func (c *checkFS) configuredBinding(ctx context.Context) (desc string, chatplanURLs []string) {
	out, err := c.api(ctx, "xml_locate configuration configuration name xml_curl.conf")
	if err != nil {
		return "", nil
	}
	var cfg struct {
		Bindings []struct {
			Name   string `xml:"name,attr"`
			Params []struct {
				Name     string  `xml:"name,attr"`
				Value    string  `xml:"value,attr"`
				Bindings *string `xml:"bindings,attr"`
			} `xml:"param"`
		} `xml:"bindings>binding"`
	}
	if xml.Unmarshal([]byte(out), &cfg) != nil {
		return "", nil
	}
	var parts []string
	for _, b := range cfg.Bindings {
		for _, p := range b.Params {
			if !strings.EqualFold(p.Name, "gateway-url") {
				continue
			}
			mask := "no bindings attribute: serves every section"
			if p.Bindings != nil {
				mask = `bindings="` + *p.Bindings + `"`
			}
			url, _, _ := strings.Cut(p.Value, "?") // the query template holds no secret, but keep it short
			parts = append(parts, fmt.Sprintf("binding %q: gateway-url %s (%s)", b.Name, url, mask))
			if p.Bindings == nil || strings.Contains(strings.ToLower(*p.Bindings), "chatplan") {
				chatplanURLs = append(chatplanURLs, url)
			}
		}
	}
	if len(parts) == 0 {
		return "no binding with a gateway-url in xml_curl.conf", nil
	}
	return strings.Join(parts, "; ") + " (as loaded by reloadxml; mod_xml_curl uses what it read at its last load)", chatplanURLs
}

// directProbe asks sipsilo itself, without credentials, to tell a stopped sipsilo
// from one FreeSWITCH cannot reach.
func (c *checkFS) directProbe(ctx context.Context, name string) []string {
	if c.httpAddr == "" {
		return []string{"pass sipsilo's --http to check-fs to tell a stopped sipsilo from a wrong binding"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	form := "hostname=check-fs&section=chatplan&tag_name=context&key_name=name&key_value=" + name
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.httpAddr+handlers.ChatplanPath+"?body=", strings.NewReader(form))
	if err != nil {
		return []string{err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// One request, no pool: nothing of this client outlives the check.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return []string{"sipsilo does not answer at " + c.httpAddr + ": start it (sipsilo serve --http " + c.httpAddr + ")"}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	switch {
	case res.StatusCode == http.StatusUnauthorized:
		return []string{"sipsilo at " + c.httpAddr + " requires basic auth: the binding's gateway-credentials must be " +
			"sipsilo's --chatplan-user:--chatplan-password (and its gateway-url must point there)"}
	case res.StatusCode == http.StatusOK && strings.Contains(string(body), name):
		return []string{"sipsilo answers at " + c.httpAddr + ", so FreeSWITCH's binding does not point there " +
			"(or another binding serves the chatplan first, or mod_xml_curl was not reloaded)"}
	}
	return []string{"sipsilo at " + c.httpAddr + " answered HTTP " + strconv.Itoa(res.StatusCode) + ": is it sipsilo?"}
}

// checkContext compares the profile's context (sofia status profile: the running
// value) with the static fallback's.
func (c *checkFS) checkContext(ctx context.Context) {
	out, err := c.api(ctx, "sofia status profile "+c.profile)
	if err != nil {
		c.fail(fmt.Sprintf("profile %s: %v", c.profile, err))
		return
	}
	ctxName, ok := statusField(out, "Context")
	if !ok {
		c.fail("profile "+c.profile+": not running ("+strings.TrimSpace(firstLine(out))+")",
			"pass the profile phones register to as --profile")
		return
	}
	static, _ := c.api(ctx, "xml_locate chatplan context name "+ctxName)
	hasStatic := strings.Contains(static, `name="`+ctxName+`"`)
	profileFix := `sip_profiles/` + c.profile + `.xml: <param name="context" value="` + conf.FallbackContext +
		`"/>, then fs_cli -x 'sofia profile ` + c.profile + ` rescan'`
	switch {
	case ctxName != conf.FallbackContext:
		what := "profile " + c.profile + ": context " + ctxName + ", but the static fallback (chatplan/default.xml) covers " +
			conf.FallbackContext + ": when sipsilo is down or says not found, FreeSWITCH runs context " + ctxName
		if strings.Contains(static, "reply") {
			what += ", whose reply echoes every message back to its sender (vanilla's demo)"
		}
		c.fail(what, profileFix)
	case !hasStatic:
		c.fail("static chatplan: no context "+ctxName+" (sipsilo's stock-delivery fallback is not installed)",
			"install freeswitch-conf's chatplan/default.xml as chatplan/default.xml, then fs_cli -x reloadxml")
	case !strings.Contains(static, conf.FallbackMarker) || strings.Contains(static, `"final"`) || strings.Contains(static, `"reply"`):
		c.fail("static chatplan: context "+ctxName+" is not sipsilo's fallback (it must only set "+conf.FallbackMarker+", never final or reply)",
			"install freeswitch-conf's chatplan/default.xml as chatplan/default.xml, then fs_cli -x reloadxml")
	default:
		c.ok("profile %s: context %s, and the static fallback has it (stock delivery while sipsilo is away)", c.profile, ctxName)
	}
}

// statusField reads "Name<spaces>\tvalue" from sofia status output.
func statusField(out, name string) (string, bool) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
