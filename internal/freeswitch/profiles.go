package freeswitch

import (
	"encoding/xml"
	"strings"
)

// SofiaConf is the part of sofia.conf (as `xml_locate configuration configuration
// name sofia.conf` prints it) that sipsilo reads: each profile's params, e.g.
// how many registrations it keeps and how it pings phones.
type SofiaConf struct {
	Profiles []struct {
		Name   string `xml:"name,attr"`
		Params []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"settings>param"`
	} `xml:"profiles>profile"`
}

// soleProfiles reads which of profiles keep one registration per user: those
// without multiple-registrations ("contact" or a true value, sofia.c), where a
// REGISTER deletes the user's other rows without an event (sofia_reg.c). A profile
// the document does not show is left out: presence then treats its registrations
// as devices of their own, as with multiple registrations.
func soleProfiles(doc string, profiles []string) map[string]bool {
	var cfg SofiaConf
	if xml.Unmarshal([]byte(doc), &cfg) != nil {
		return nil
	}
	out := map[string]bool{}
	for _, p := range cfg.Profiles {
		want := false
		for _, name := range profiles {
			want = want || name == p.Name
		}
		if !want {
			continue
		}
		multi := "" // sofia: the last one wins, names case-insensitive
		for _, kv := range p.Params {
			if strings.EqualFold(kv.Name, "multiple-registrations") {
				multi = kv.Value
			}
		}
		out[p.Name] = !strings.EqualFold(multi, "contact") && !fsTrue(multi)
	}
	return out
}

// fsTrue is FreeSWITCH's switch_true.
func fsTrue(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "on", "true", "t", "enabled", "active", "allow":
		return true
	}
	n := 0
	for _, r := range v {
		if r < '0' || r > '9' {
			return false
		}
		n = n*10 + int(r-'0')
	}
	return v != "" && n != 0
}
