package presence_test

import (
	"github.com/sipsilo/sipsilo/internal/freeswitch"
	"github.com/sipsilo/sipsilo/presence"
)

// The captured FreeSWITCH events reach presence through the adapter's translation,
// as in the daemon (internal/freeswitch imports presence, so only an external test
// file can connect them).
func init() { presence.TranslateESL = freeswitch.PresenceEvent }
