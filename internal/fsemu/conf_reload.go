package fsemu

import (
	"slices"
	"strings"
)

// liveXML is the part of FreeSWITCH's configuration that changes while it
// runs: reloadxml replaces the in-memory XML (the static chatplan and
// configuration that lookups fall back to), and `sofia profile <p> rescan`
// re-applies the profile's params from it.
type liveXML struct {
	context          string
	chatplan, config *xnode
	// modules are the loaded modules (load, unload, reload change them) and
	// xmlCurl the chatplan binding mod_xml_curl read when it last loaded.
	modules []string
	xmlCurl *XMLCurl
}

func (s *Switch) liveXML() liveXML {
	s.liveMu.RLock()
	defer s.liveMu.RUnlock()
	return s.live
}

// reloadXML reads the conf directory again into the in-memory XML. Modules
// keep what they read when they loaded (mod_xml_curl its bindings, the event
// socket its address). A switch not made from a conf directory has nothing to
// re-read.
func (s *Switch) reloadXML() (*Conf, error) {
	if s.opts.confDir == "" {
		return nil, nil
	}
	c, err := LoadConf(s.opts.confDir)
	if err != nil {
		return nil, err
	}
	s.liveMu.Lock()
	s.live.chatplan, s.live.config = c.chatplan, c.config
	s.liveMu.Unlock()
	return c, nil
}

// reloadXMLAPI is mod_commands' reloadxml, with the real server's answer.
func (s *Switch) reloadXMLAPI(string) string {
	if _, err := s.reloadXML(); err != nil {
		return "-ERR [" + err.Error() + "]\n"
	}
	return "+OK [Success]\n"
}

// rescan is `sofia profile <p> rescan` as FreeSWITCH 1.10.12 does it
// (TestRealFSCheckFS): it reloads the XML itself, then applies the profile's
// params that are there. A context param removed from the file is not reset:
// the profile keeps its context until a restart.
func (s *Switch) rescan() string {
	c, err := s.reloadXML()
	if err != nil {
		return "Reload XML [Failed]\n"
	}
	if c != nil {
		if p, ok := c.Profile(s.opts.Profile); ok {
			if v, ok := p.Param("context"); ok && v != "" {
				s.liveMu.Lock()
				s.live.context = v
				s.liveMu.Unlock()
			}
		}
	}
	return "Reload XML [Success]\n+OK scan complete\n"
}

// The module commands of mod_commands, with FreeSWITCH 1.10.12's answers
// (measured). Only the modules the emulator knows can be loaded; the APIs a
// module registers stay registered when it is unloaded (only Loaded changes,
// which is what the chatplan, xml_locate and module_exists consult).

const errNoSuchModule = "No such module!"

// unloadAPI is `unload <module>`.
func (s *Switch) unloadAPI(args string) string {
	if !s.unload(strings.TrimSpace(args)) {
		return "-ERR [" + errNoSuchModule + "]\n"
	}
	return "+OK\n"
}

// loadAPI is `load <module>`: FreeSWITCH reloads the XML first.
func (s *Switch) loadAPI(args string) string {
	_, _ = s.reloadXML()
	m := strings.TrimSpace(args)
	if s.Loaded(m) {
		return "+OK Reloading XML\n-ERR [Module already loaded]\n"
	}
	if err := s.load(m); err != "" {
		return "+OK Reloading XML\n-ERR [" + err + "]\n"
	}
	return "+OK Reloading XML\n+OK\n"
}

// reloadAPI is `reload <module>`: unload, then load, each reported.
func (s *Switch) reloadAPI(args string) string {
	_, _ = s.reloadXML()
	m := strings.TrimSpace(args)
	out := "+OK Reloading XML\n"
	if s.unload(m) {
		out += "+OK module unloaded\n"
	} else {
		out += "-ERR unloading module [" + errNoSuchModule + "]\n"
	}
	if err := s.load(m); err != "" {
		return out + "-ERR loading module [" + err + "]\n"
	}
	return out + "+OK module loaded\n"
}

func (s *Switch) unload(m string) bool {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	i := slices.Index(s.live.modules, m)
	if i < 0 {
		return false
	}
	s.live.modules = slices.Delete(slices.Clone(s.live.modules), i, i+1)
	return true
}

// load adds m; mod_xml_curl reads its bindings from the conf directory again
// (a switch not made from one keeps the binding it was given).
func (s *Switch) load(m string) string {
	const loadErr = "module load file routine returned an error"
	if !slices.Contains(capturedModules, m) {
		return loadErr
	}
	x := s.liveXML().xmlCurl
	if m == "mod_xml_curl" && s.opts.confDir != "" {
		c, err := LoadConf(s.opts.confDir)
		if err != nil || c.XMLCurlError != "" {
			return loadErr
		}
		if x, err = c.chatplanBinding(); err != nil {
			return loadErr
		}
	}
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if m == "mod_xml_curl" {
		s.live.xmlCurl = x
	}
	s.live.modules = append(slices.Clone(s.live.modules), m)
	return ""
}
