package fsemu

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Install says how InstallConf installs sipsilo's files into a FreeSWITCH conf
// directory.
type Install struct {
	// Context is the internal profile's context param; default "public" (vanilla).
	Context string
	// Drop lists modules whose <load> line is commented out after merging.
	Drop []string
	// NoPingSnippet leaves the ping params out of internal.xml.
	NoPingSnippet bool
}

// InstallConf builds a FreeSWITCH 1.10 conf directory in dir the way
// freeswitch-conf/README.md tells an operator to: a vanilla-shaped skeleton
// (freeswitch.xml including autoload_configs/*.xml and chatplan/*.xml, sofia.conf
// including ../sip_profiles/*.xml, the vanilla modules and an internal profile),
// then the files in from (sipsilo fs-config's output) installed: *.xml files copied
// in place, the modules snippet merged into modules.conf.xml, the ping-params
// snippet pasted at the end of internal.xml's <settings>. The .snippet files are
// copied too, next to their targets, to show they are never included.
func InstallConf(dir, from string, in Install) error {
	files := map[string][]byte{}
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		return err
	}
	modSnippet, ok1 := files["autoload_configs/modules.conf.xml.snippet"]
	pingSnippet, ok2 := files["sip_profiles/internal-ping-params.xml.snippet"]
	if !ok1 || !ok2 {
		return fmt.Errorf("fsemu: %s lacks the snippets", from)
	}
	modules := vanillaModulesHead + string(modSnippet) + vanillaModulesTail
	for _, m := range in.Drop {
		line := `<load module="` + m + `"/>`
		if !strings.Contains(modules, line) {
			return fmt.Errorf("fsemu: no %s line to drop", m)
		}
		modules = strings.ReplaceAll(modules, line, "<!-- dropped: "+m+" -->")
	}
	ping := string(pingSnippet)
	if in.NoPingSnippet {
		ping = ""
	}
	internal := strings.Replace(internalXML, "CONTEXT", or(in.Context, "public"), 1)
	out := map[string][]byte{
		"freeswitch.xml":                    []byte(freeswitchXML),
		"autoload_configs/sofia.conf.xml":   []byte(sofiaConfXML),
		"autoload_configs/modules.conf.xml": []byte(modules),
		"sip_profiles/internal.xml":         []byte(strings.Replace(internal, "<!-- PING -->", ping, 1)),
	}
	for rel, data := range files {
		if rel == "INSTALL.txt" {
			continue
		}
		out[rel] = data
	}
	for rel, data := range out {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

const freeswitchXML = `<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="set" data="domain=127.0.0.1"/>
  <section name="configuration" description="Various Configuration">
    <X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/>
  </section>
  <section name="chatplan" description="Regex/XML Chatplan">
    <X-PRE-PROCESS cmd="include" data="chatplan/*.xml"/>
  </section>
</document>
`

const sofiaConfXML = `<configuration name="sofia.conf" description="sofia Endpoint">
  <global_settings>
    <param name="log-level" value="0"/>
  </global_settings>
  <profiles>
    <X-PRE-PROCESS cmd="include" data="../sip_profiles/*.xml"/>
  </profiles>
</configuration>
`

// internalXML is vanilla's internal profile cut to what matters here.
const internalXML = `<profile name="internal">
  <settings>
    <param name="dialplan" value="XML"/>
    <param name="context" value="CONTEXT"/>
    <param name="sip-port" value="5060"/>
    <param name="presence-hosts" value="$${domain}"/>
    <!-- <param name="all-reg-options-ping" value="true"/> -->
    <!-- PING -->
  </settings>
</profile>
`

const vanillaModulesHead = `<configuration name="modules.conf" description="Modules">
  <modules>
    <load module="mod_console"/>
    <load module="mod_logfile"/>
    <load module="mod_sofia"/>
    <load module="mod_loopback"/>
    <load module="mod_dialplan_xml"/>
`

const vanillaModulesTail = `
  </modules>
</configuration>
`
