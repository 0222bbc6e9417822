package fsemu

// liveXML is the part of FreeSWITCH's configuration that changes while it
// runs: reloadxml replaces the in-memory XML (the static chatplan and
// configuration that lookups fall back to), and `sofia profile <p> rescan`
// re-applies the profile's params from it.
type liveXML struct {
	context          string
	chatplan, config *xnode
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
