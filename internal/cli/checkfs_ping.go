package cli

import (
	"context"
	"encoding/xml"
	"strings"

	"github.com/sipsilo/sipsilo/internal/freeswitch"
)

// checkPing reads the profile's OPTIONS ping params. sofia status (1.10,
// mod_sofia.c cmd_status) prints none of them, so the running profile's values
// are not observable over ESL; FreeSWITCH's XML registry is, through xml_locate,
// and the profile takes it on `sofia profile <p> rescan`.
func (c *checkFS) checkPing(ctx context.Context) {
	const notLive = "(read from FreeSWITCH's XML; the running profile's values are not checkable over ESL)"
	out, err := c.api(ctx, "xml_locate configuration configuration name sofia.conf")
	var cfg freeswitch.SofiaConf
	if err != nil || xml.Unmarshal([]byte(out), &cfg) != nil {
		c.skip("ping params: not checkable over ESL (sofia.conf not found in FreeSWITCH's XML); check that " +
			"sip_profiles/" + c.profile + ".xml ends its <settings> with the lines of internal-ping-params.xml.snippet")
		return
	}
	params := map[string]string{} // sofia: names case-insensitive, the last one wins
	found := false
	for _, p := range cfg.Profiles {
		if p.Name != c.profile {
			continue
		}
		found = true
		for _, kv := range p.Params {
			params[strings.ToLower(kv.Name)] = kv.Value
		}
	}
	if !found {
		c.skip("ping params: profile " + c.profile + " is not in sofia.conf's XML: not checkable over ESL")
		return
	}
	fix := "paste the <param> lines of internal-ping-params.xml.snippet at the END of <settings> in sip_profiles/" +
		c.profile + ".xml, then fs_cli -x 'sofia profile " + c.profile + " rescan'"
	nat := strings.ToLower(params["nat-options-ping"])
	if !fsTrue(params["all-reg-options-ping"]) && !fsTrue(nat) && nat != "udp-only" {
		c.fail("ping params: profile "+c.profile+" pings no registered phone (all-reg-options-ping and nat-options-ping off): "+
			"no sofia::sip_user_state events, the NAT-safe liveness feed "+notLive, fix)
	} else {
		c.ok("ping params: profile %s pings registered phones (all-reg-options-ping %s, nat-options-ping %s, ping-mean-interval %s, sip-user-ping-max %s, sip-user-ping-min %s) %s",
			c.profile, valueOr(params["all-reg-options-ping"], "unset"), valueOr(params["nat-options-ping"], "unset"),
			valueOr(params["ping-mean-interval"], "unset (30)"), valueOr(params["sip-user-ping-max"], "unset (3)"),
			valueOr(params["sip-user-ping-min"], "unset (1)"), notLive)
	}
	if fsTrue(params["unregister-on-options-fail"]) {
		c.fail("ping params: unregister-on-options-fail is true in profile "+c.profile+": FreeSWITCH drops phones that answer "+
			"OPTIONS with 405 or 501 (docs/decisions.md §6) "+notLive,
			`sip_profiles/`+c.profile+`.xml: <param name="unregister-on-options-fail" value="false"/> as the last such line, then fs_cli -x 'sofia profile `+c.profile+` rescan'`)
	} else {
		c.ok("ping params: unregister-on-options-fail is off in profile %s %s", c.profile, notLive)
	}
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
