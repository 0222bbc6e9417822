// Package freeswitchconf ships the FreeSWITCH 1.10 configuration sipsilo needs: the
// mod_xml_curl chatplan binding with the dynamic body URL, the event socket sipsilo connects
// to, a safe static fallback chatplan, the sofia ping params for the sip_user_state feed and
// the modules to load. README.md in this directory says where each file goes and why.
//
// The directory name has a dash (freeswitch-conf), so the package is named freeswitchconf.
package freeswitchconf

import (
	"embed"
	"strings"
)

// Files holds the shipped files with paths relative to FreeSWITCH's conf directory
// (autoload_configs/…, chatplan/…, sip_profiles/…). Files ending in .xml are complete files
// that replace FreeSWITCH's own; files ending in .snippet are fragments to merge by hand and
// must never be installed under a .xml name (FreeSWITCH includes every *.xml in those
// directories).
//
//go:embed autoload_configs chatplan sip_profiles
var Files embed.FS

// The values below appear verbatim in the shipped files, so Render (behind sipsilo fs-config)
// can substitute an operator's settings for them; conf_test.go and render_test.go keep them in step.
const (
	// ChatplanURL is the gateway-url of the chatplan binding in
	// autoload_configs/xml_curl.conf.xml (where its '&' is written "&amp;"): sipsilo's
	// default listen address, the handler path and the message body expanded by FreeSWITCH
	// (use-dynamic-url), URL-encoded and as an MD5 that proves the decoding exact, both
	// wrapped in '_' so that FreeSWITCH's trimming of API arguments keeps the body's own
	// edges (dialplan.DecodeText).
	ChatplanURL = "http://127.0.0.1:8484/fs/chatplan?text=${url_encode(_${_body}_)}&md5=${md5(_${_body}_)}"

	// ChatplanTimeoutSeconds is the binding's timeout. FreeSWITCH takes whole seconds and
	// treats 0 as no limit.
	ChatplanTimeoutSeconds = 3

	// ESLAddress is where autoload_configs/event_socket.conf.xml makes FreeSWITCH listen.
	ESLAddress = "127.0.0.1:8021"

	// ESLPassword is FreeSWITCH's well-known default password, shipped so that a fresh
	// install works; operators are told to change it.
	ESLPassword = "ClueCon"

	// FallbackContext is the chatplan context of the static fallback: the context the
	// vanilla internal sofia profile puts on inbound messages.
	FallbackContext = "public"

	// FallbackMarker is the header the static fallback chatplan sets on every message it
	// handles; it shows up in the MESSAGE event FreeSWITCH fires over ESL after delivering
	// the message itself.
	FallbackMarker = "sipsilo_static_chatplan"
)

// ChatplanURLAttr is url as written in an XML attribute of the binding.
func ChatplanURLAttr(url string) string { return strings.ReplaceAll(url, "&", "&amp;") }
