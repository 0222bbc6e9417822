// Package presence keeps sipsilo's view of which AORs (user@host) can be delivered to
// now: their registrations as FreeSWITCH reports them, and how reachable each one is
// (docs/architecture.md, "Reachability"). It reads evidence from three places: FreeSWITCH events
// (Apply), FreeSWITCH's registration list after a (re)connect (Resync), and relay's
// delivery outcomes (Observe). The map is persisted in bbolt's reach bucket so that a
// restart starts from the last known state; a resync then corrects it.
//
// # Which header names the AOR
//
// The AOR is always sofia's own key for the registration, sip_user@sip_host of its
// sip_registrations table; each event spells it differently:
//
//   - sofia::register, sofia::unregister: from-user@from-host. Despite the name these
//     are the registered identity (sofia_reg.c fills from-user with the To user and
//     from-host with the registration domain, and to-user with the From user), so a
//     third-party REGISTER still lands on the right AOR. In the recorded scenarios (01,
//     07, 08, 10, 11; testdata/esl) both pairs are equal.
//   - sofia::expire: user@host (it has no from-user; sofia_reg_del_callback copies
//     sip_user and sip_host from the table row). Scenarios 08–11.
//   - sofia::sip_user_state: from-user@from-host, falling back to sip_user, which is the
//     same text (scenarios 09–11).
//   - PRESENCE_IN with status Unregistered: from (scenarios 07–11).
//   - sofia::error with Error-Reason "no recipient": Chat-Send-To (scenarios 03, 07).
//
// PRESENCE_IN Unregistered carries no Call-ID and clears every registration of the
// AOR. That is exact with FreeSWITCH's default single registration per user (an
// un-REGISTER then deletes all the user's rows). With multiple-registrations on, an
// expiry fires it for each removed row even while others remain (sofia_reg.c,
// sofia_reg_del_callback), so a live registration can vanish from the map until its
// next REGISTER or a resync; delivery then waits, nothing is lost.
//
// sofia::pre_register is ignored: it also fires when a MESSAGE is authenticated, with
// from-user set to the recipient (docs/decisions.md §22).
//
// # Ordering
//
// eslgo hands events over from separate goroutines, and FreeSWITCH repeats some (a
// REACHABLE twice in scenario 11), so events arrive out of order and twice. Each AOR
// remembers the (Core-UUID, Event-Sequence) of the last event applied to it. An event
// with the same Core-UUID and a sequence at or below that one is stale and ignored; an
// event from another Core-UUID (FreeSWITCH restarted, its counter starts over) is
// applied and its Core-UUID becomes the AOR's. So the event with the highest sequence
// decides, whatever the arrival order. An AOR whose last registration went away keeps
// this mark in memory (not on disk), so a late, older REGISTER cannot revive it.
//
// The mark is per AOR, not per registration: with several registrations under one
// AOR, an older event of one registration that arrives after a newer event of another
// is dropped too. Resync repairs that.
package presence
