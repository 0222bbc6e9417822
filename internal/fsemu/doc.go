// Package fsemu is a test-only emulator of the FreeSWITCH 1.10.12 pieces
// sipsilo talks to: mod_xml_curl's chatplan lookup (the exact HTTP request
// FreeSWITCH sends), mod_sms's chatplan semantics (what FreeSWITCH does with
// the XML sipsilo answers), and mod_event_socket (ESLServer: auth, commands,
// api/bgapi, plain and JSON events with FreeSWITCH's framing and quirks).
//
// Ground truth is what a real FreeSWITCH 1.10.12 sent on loopback, recorded in
// testdata/xmlcurl and testdata/esl, and, where the recordings are silent, the
// FreeSWITCH C source; each function names the C function it reproduces, quirks included,
// because a quirk sipsilo does not expect is exactly what a test must show.
//
// Entry points: NewMessageEvent builds the MESSAGE event of an inbound SIP
// MESSAGE; XMLCurl.BuildRequest and XMLCurl.Lookup produce and send the
// chatplan request; ApplyChatplan (or XMLCurl.Process for both steps) says
// what FreeSWITCH then does: how many times the message is delivered
// directly, what is replied, and the event ESL would see. NewESLServer
// serves the event socket; Fire sends an event to every subscribed client.
// NewSwitch adds the SIP side (registrar, inbound MESSAGE routing, the chat
// API) on one UDP socket; NewUA is a test phone for it.
//
// Not modelled, although the real 1.10.12 does it (internal/e2e's TestRealFS
// scenarios run against both, docs/decisions.md §18): the 500 that sofia-sip
// sometimes answers to an authenticated MESSAGE in a burst while FreeSWITCH may
// still route it; the event socket's 20 ms poll of an idle client, which delays
// every event by 0–20 ms (so a chat holds its slot ≈ 119 ms here instead of
// ≈ 105 ms); the rare swap of two neighbouring chats by FreeSWITCH's job threads.
package fsemu
