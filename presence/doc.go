// Package presence keeps sipsilo's view of which AORs (user@host) can be delivered to
// now: their registrations as FreeSWITCH reports them, and how reachable each one is
// (docs/architecture.md, "Reachability"). It reads evidence from three places: PBX events
// (ApplyEvent), FreeSWITCH's registration list after a (re)connect (Resync), and relay's
// delivery outcomes (Observe, ObserveDeviceSent). The map is persisted in bbolt's
// reach bucket so that a restart starts from the last known state; a resync then
// corrects it.
//
// # Events
//
// Presence names no PBX: an adapter translates the PBX's events into Event
// (internal/freeswitch for FreeSWITCH's sofia events) and calls ApplyEvent.
//
// # Devices
//
// A device is one registration, keyed by its +sip.instance or its reduced contact,
// and the key survives re-registrations and restarts of the phone; a device whose
// registration ended is remembered for Config.DeviceMemory, so that messages
// received meanwhile still target it (docs/decisions.md §28). An Unregistered event
// (FreeSWITCH's PRESENCE_IN) names no registration: it ends the AOR's only device
// and never several.
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
// this mark (on disk while it remembers a device, else in memory), so a late, older
// REGISTER cannot revive it.
//
// The mark is per AOR, not per registration: with several registrations under one
// AOR, an older event of one registration that arrives after a newer event of another
// is dropped too. Resync repairs that.
package presence
