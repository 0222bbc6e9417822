package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	astconf "github.com/sipsilo/sipsilo/asterisk-conf"
	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/internal/daemon"
	"github.com/sipsilo/sipsilo/internal/netaddr"
	"github.com/sipsilo/sipsilo/presence"
)

// parseServe reads serve's flags; each flag can also come from SIPSILO_<NAME> in the
// environment (--esl-password is SIPSILO_ESL_PASSWORD) or from the TOML file named by
// --config; the command line wins over the environment, which wins over the file
// (configfile.go).
func parseServe(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (daemon.Config, error) {
	var cfg daemon.Config
	var domains, skipTypes, profiles string
	fs := flag.NewFlagSet("sipsilo serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8484", "HTTP listen address (xml_curl chatplan endpoint, health)")
	fs.StringVar(&cfg.DBPath, "db", "./sipsilo.db", "bbolt database file")
	fs.BoolVar(&cfg.NewStore, "new-store", false, "start a new, empty store in an existing empty --db file (refused without it: an empty file where a store was expected means lost contents); a --db path that does not exist always starts a new store")
	fs.StringVar(&cfg.ESLAddr, "esl", "127.0.0.1:8021", "FreeSWITCH event socket address")
	fs.StringVar(&cfg.ESLPassword, "esl-password", "ClueCon", "FreeSWITCH event socket password (prefer SIPSILO_ESL_PASSWORD)")
	fs.StringVar(&domains, "domains", "", "comma-separated local domains whose users sipsilo serves (empty: every recipient)")
	fs.StringVar(&skipTypes, "skip-types", strings.Join(handlers.DefaultSkipTypes, ","), "comma-separated content types left to FreeSWITCH")
	fs.IntVar(&cfg.Chatplan.MaxBody, "max-body", handlers.DefaultMaxBody, "largest message body stored, in bytes")
	fs.DurationVar(&cfg.Chatplan.AnswerTimeout, "answer-timeout", handlers.DefaultAnswerTimeout, "deadline for a chatplan answer; keep it far below xml_curl's timeout")
	fs.StringVar(&cfg.Chatplan.User, "chatplan-user", "", "HTTP basic auth user required on /fs/chatplan (xml_curl gateway-credentials)")
	fs.StringVar(&cfg.Chatplan.Password, "chatplan-password", "", "HTTP basic auth password for /fs/chatplan (prefer SIPSILO_CHATPLAN_PASSWORD)")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error (message text is logged only at debug)")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "longest graceful shutdown")
	fs.StringVar(&profiles, "profiles", "internal", "comma-separated sofia profiles whose registrations are resynced over ESL")
	fs.DurationVar(&cfg.DeviceMemory, "device-memory", presence.DefaultDeviceMemory, "a device whose registration ended still gets the messages received within this long after (a phone unseen longer is forgotten)")
	fs.DurationVar(&cfg.BodyGrace, "body-grace", 2*time.Second, "how long to wait for the exact body from ESL before the query copy is used")
	fs.IntVar(&cfg.Relay.Window, "window", 16, "sends in flight per recipient through FreeSWITCH (1: strict FIFO)")
	fs.IntVar(&cfg.Relay.DirectWindow, "direct-window", 0, "sends in flight per recipient on the direct path (0: 4, or --window if smaller)")
	fs.IntVar(&cfg.Relay.MaxInFlight, "max-in-flight", 256, "sends in flight over all recipients")
	fs.DurationVar(&cfg.Relay.Settle, "settle", 20*time.Millisecond, "a message younger than this is not sent yet (keeps bursts in order)")
	fs.IntVar(&cfg.Relay.DeadAfter, "dead-after", 5, "refusals by a registered device before a message is dead-lettered")
	fs.DurationVar(&cfg.Relay.RetryMin, "retry-min", time.Second, "first backoff after a refusal (doubles per refusal)")
	fs.DurationVar(&cfg.Relay.RetryMax, "retry-max", 5*time.Minute, "longest backoff after refusals")
	fs.DurationVar(&cfg.Relay.NoAnswerAfter, "no-answer-after", 15*time.Second, "a chat error after this long means the device did not answer (FreeSWITCH gives up at ~20 s)")
	fs.DurationVar(&cfg.Relay.TimerF, "timer-f", 32*time.Second, "no resend of a timed-out or lost send before this (SIP Timer F)")
	fs.StringVar(&cfg.Ping.Mode, "ping", "direct", "sipsilo's own OPTIONS pinger: direct (contacts reachable without NAT), all (NATed contacts too, at the address FreeSWITCH saw; their NAT may drop sipsilo's packets and get them flushed) or off")
	fs.StringVar(&cfg.Ping.Addr, "ping-addr", "127.0.0.1:0", "UDP address of the pinger's socket (an IP the phones can reach; also used by the direct path)")
	fs.DurationVar(&cfg.Ping.Interval, "ping-interval", 5*time.Second, "longest time between OPTIONS to one contact (waits vary down to 10% less)")
	fs.DurationVar(&cfg.Ping.Timeout, "ping-timeout", time.Second, "deadline of one OPTIONS, retransmissions included")
	fs.IntVar(&cfg.Ping.Misses, "ping-misses", 2, "unanswered OPTIONS in a row that make a contact unreachable")
	fs.Float64Var(&cfg.Ping.Rate, "ping-rate", 500, "most OPTIONS sent per second over all contacts")
	fs.IntVar(&cfg.Ping.Concurrency, "ping-concurrency", 256, "most OPTIONS awaiting an answer at once")
	fs.BoolVar(&cfg.Ping.FlushUnreachable, "flush-unreachable", true, "ask FreeSWITCH (flush_inbound_reg) to drop a registration the pinger found unreachable")
	fs.DurationVar(&cfg.Ping.ProbeAfter, "probe-after", 3*time.Second, "probe a recipient before delivering when its last proof of life is older than this")
	fs.BoolVar(&cfg.Ping.Direct, "direct", true, "send MESSAGE straight to contacts that answer sipsilo's own OPTIONS without NAT")
	fs.DurationVar(&cfg.Ping.DirectTimeout, "direct-timeout", 4*time.Second, "wait for a device's answer to a direct MESSAGE")
	fs.StringVar(&cfg.MySQLDSN, "mysql-dsn", "", "MySQL/MariaDB for the message history, as user:password@tcp(host:port)/db (prefer SIPSILO_MYSQL_DSN); empty: bbolt only")
	fs.DurationVar(&cfg.TTL, "ttl", 7*24*time.Hour, "a message not delivered within this expires, recorded as expired (0: never)")
	fs.DurationVar(&cfg.Relay.SweepEvery, "expire-every", time.Minute, "how often queues are checked for expired messages (each send is checked too)")
	fs.BoolVar(&cfg.Journal, "journal", true, "answer writes once they are in the write-ahead journal beside --db (<db>.journal/), applying them to --db in bulk: one fdatasync per answer instead of a bbolt commit (=false: the bbolt path, for one release)")
	fs.Int64Var(&cfg.JournalSegment, "journal-segment", 32<<20, "bytes per preallocated journal segment file (with --journal)")
	fs.IntVar(&cfg.Quota, "quota", 1000, "queued messages per recipient; above it the chatplan lets FreeSWITCH deliver as stock (0: no cap)")
	fs.StringVar(&cfg.Relay.Notices.From, "notice-from", "", "service address (user@host) that notices to senders come from; empty: no notices")
	fs.BoolVar(&cfg.Relay.Notices.Stored, "notice-stored", false, `tell the sender "stored for later delivery" when the recipient cannot be reached at once (needs --notice-from)`)
	fs.BoolVar(&cfg.Relay.Notices.Expired, "notice-expired", false, `tell the sender "expired undelivered" when a message expires (needs --notice-from)`)
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "bearer token for /api/v1 (prefer SIPSILO_ADMIN_TOKEN); empty: the API is off")
	fs.BoolVar(&cfg.ChatplanOpen, "chatplan-open", false, "serve /fs/chatplan on a non-loopback --http without --chatplan-password, for a private network where only FreeSWITCH reaches the port; anyone who reaches it can store messages from any sender")

	fs.StringVar(&cfg.PBX, "pbx", daemon.PBXFreeSWITCH, "the switch sipsilo serves beside: freeswitch or asterisk")
	fs.StringVar(&cfg.Asterisk.AMIAddr, "ami", "127.0.0.1:5038", "Asterisk manager (AMI) address (--pbx asterisk)")
	fs.StringVar(&cfg.Asterisk.AMIUser, "ami-user", astconf.AMIUser, "AMI user (--pbx asterisk)")
	fs.StringVar(&cfg.Asterisk.AMISecret, "ami-secret", astconf.AMISecret, "AMI secret, the shipped manager_sipsilo.conf's by default (--pbx asterisk; prefer SIPSILO_AMI_SECRET)")
	fs.StringVar(&cfg.Asterisk.Domain, "ast-domain", "127.0.0.1", "host part of Asterisk users' addresses, user@host (--pbx asterisk)")

	fs.String(configFlag, "", "TOML file with settings named like these flags (also SIPSILO_CONFIG); flags and SIPSILO_* environment override it")

	if path := configPath(args, lookupEnv); path != "" {
		if err := applyConfigFile(fs, path, stderr); err != nil {
			return cfg, err
		}
	}
	vars := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != configFlag { // read above, before every other setting
			vars[f.Name] = envName(f.Name)
		}
	})
	if err := setFromEnv(fs, lookupEnv, vars); err != nil {
		return cfg, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	cfg.Chatplan.Domains = splitList(domains)
	cfg.Profiles = splitList(profiles)
	cfg.Chatplan.SkipTypes = splitList(skipTypes)
	if cfg.Chatplan.SkipTypes == nil {
		cfg.Chatplan.SkipTypes = []string{} // explicitly empty: store every type
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return cfg, errors.New("serve: --log-format must be text or json")
	}
	if cfg.Chatplan.AnswerTimeout <= 0 || cfg.Chatplan.MaxBody <= 0 || cfg.ShutdownTimeout <= 0 {
		return cfg, errors.New("serve: --answer-timeout, --max-body and --shutdown-timeout must be positive")
	}
	r := cfg.Relay
	if cfg.BodyGrace <= 0 || r.Window <= 0 || r.DirectWindow < 0 || r.MaxInFlight <= 0 || r.Settle < 0 || r.DeadAfter <= 0 ||
		r.RetryMin <= 0 || r.RetryMax < r.RetryMin || r.NoAnswerAfter <= 0 || r.TimerF <= 0 {
		return cfg, errors.New("serve: delivery settings must be positive (and --retry-max >= --retry-min)")
	}
	if cfg.AdminToken == "" && !netaddr.IsLoopback(cfg.HTTPAddr) {
		return cfg, fmt.Errorf("serve: --http %s is not a loopback address; set --admin-token (SIPSILO_ADMIN_TOKEN) before exposing sipsilo's HTTP", cfg.HTTPAddr)
	}
	if cfg.Chatplan.Password == "" && !cfg.ChatplanOpen && !netaddr.IsLoopback(cfg.HTTPAddr) {
		return cfg, fmt.Errorf("serve: --http %s is not a loopback address; set --chatplan-user and --chatplan-password "+
			"(SIPSILO_CHATPLAN_PASSWORD, the credentials of FreeSWITCH's chatplan binding), or --chatplan-open on a private network", cfg.HTTPAddr)
	}
	if cfg.DeviceMemory <= 0 {
		return cfg, errors.New("serve: --device-memory must be positive")
	}
	if cfg.JournalSegment < 1<<20 {
		return cfg, errors.New("serve: --journal-segment must be at least 1 MiB (a segment holds whole messages of up to --max-body)")
	}
	if cfg.TTL < 0 || cfg.Quota < 0 || r.SweepEvery <= 0 {
		return cfg, errors.New("serve: --ttl and --quota must not be negative, --expire-every must be positive")
	}
	if n := r.Notices; n.From != "" && !strings.Contains(n.From, "@") {
		return cfg, errors.New("serve: --notice-from must be user@host")
	}
	if n := r.Notices; n.From == "" && (n.Stored || n.Expired) {
		return cfg, errors.New("serve: --notice-stored and --notice-expired need --notice-from")
	}
	cfg.Chatplan.ServiceAddress = cfg.Relay.Notices.From
	if cfg.PBX != daemon.PBXFreeSWITCH && cfg.PBX != daemon.PBXAsterisk {
		return cfg, errors.New("serve: --pbx must be freeswitch or asterisk")
	}
	p := cfg.Ping
	if p.Mode != "all" && p.Mode != "direct" && p.Mode != "off" {
		return cfg, errors.New("serve: --ping must be all, direct or off")
	}
	if p.Interval <= 0 || p.Timeout <= 0 || p.Misses <= 0 || p.Rate <= 0 || p.Concurrency <= 0 ||
		p.ProbeAfter < 0 || p.DirectTimeout <= 0 {
		return cfg, errors.New("serve: pinger settings must be positive")
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
