package daemon

import (
	"log/slog"
	"time"

	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/relay"
)

// Config is everything `sipsilo serve` is told from outside.
type Config struct {
	HTTPAddr        string
	DBPath          string
	NewStore        bool // an existing empty --db file may become a new store
	ESLAddr         string
	ESLPassword     string
	LogLevel        slog.Level
	LogFormat       string
	ShutdownTimeout time.Duration
	Chatplan        handlers.ChatplanConfig
	Profiles        []string      // sofia profiles whose registrations are resynced
	DeviceMemory    time.Duration // an ended device stays a target this long (docs/decisions.md §28)
	BodyGrace       time.Duration
	Relay           relay.Config
	Ping            PingConfig
	MySQLDSN        string        // empty: no history mirror, no outbox
	AdminToken      string        // empty: /api/v1 is off
	ChatplanOpen    bool          // a non-loopback --http may serve the chatplan without credentials
	TTL             time.Duration // a queued message expires after this (0: never)
	Quota           int           // queued messages per recipient (0: no cap)
	Journal         bool          // intake answered from the write-ahead journal (docs/decisions.md §34)
	JournalSegment  int64         // bytes per journal segment (0: kv's default)
	Version         string        // logged at start
	PBX             string        // PBXFreeSWITCH (default) or PBXAsterisk
	Asterisk        AsteriskConfig
}

// The switches sipsilo serves beside.
const (
	PBXFreeSWITCH = "freeswitch"
	PBXAsterisk   = "asterisk"
)

// AsteriskConfig is how sipsilo reaches Asterisk (--pbx asterisk).
type AsteriskConfig struct {
	AMIAddr, AMIUser, AMISecret string
	// Domain is the host of every recipient AOR (Asterisk names endpoints
	// without one).
	Domain string
}

// PingConfig is sipsilo's own OPTIONS pinger and what relay does with it
// (docs/decisions.md §8, §20).
type PingConfig struct {
	Mode             string // all, direct or off
	Addr             string // the pinger's UDP socket (also the direct path's)
	Interval         time.Duration
	Timeout          time.Duration
	Misses           int
	Rate             float64
	Concurrency      int
	FlushUnreachable bool
	ProbeAfter       time.Duration
	Direct           bool
	DirectTimeout    time.Duration
}
