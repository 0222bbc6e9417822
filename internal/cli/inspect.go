package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/sipsilo/sipsilo/kv"
)

const inspectUsage = `Usage: sipsilo inspect [flags] <view> [flags]

Reads a stopped daemon's database file; it opens it read-only and never changes it.
While sipsilo serve runs, its admin API (/api/v1) shows the same views live.

Views:
  stats            counts by state, queue depth per recipient, oldest queued, outbox, file size
  queue            recipients with queued messages, deepest first
  queue <aor>      one recipient's queue in delivery order (paged)
  presence         the persisted reachability records (paged)
  presence <aor>   one AOR's registrations and evidence
  message <id>     one message with its history
  dead             dead letters (--state for any other state; paged)
  outbox           history records not yet copied to MySQL, oldest first (paged)

Flags (also after the view):
`

// inspectOpts is what `sipsilo inspect` is told.
type inspectOpts struct {
	db          string
	json        bool
	redact      bool
	redactKey   string
	lockTimeout time.Duration
	limit       int
	after       string
	state       string
}

// views and how many positional arguments each takes (min, max).
var inspectViews = map[string][2]int{
	"stats": {0, 0}, "queue": {0, 1}, "presence": {0, 1}, "message": {1, 1}, "dead": {0, 0}, "outbox": {0, 0},
}

func parseInspect(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (inspectOpts, []string, error) {
	var o inspectOpts
	fs := flag.NewFlagSet("sipsilo inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, inspectUsage); fs.PrintDefaults() }
	fs.StringVar(&o.db, "db", "./sipsilo.db", "the database file (env SIPSILO_DB, as for serve)")
	fs.BoolVar(&o.json, "json", false, "JSON output for scripts instead of tables")
	fs.BoolVar(&o.redact, "redact", false, "hide bodies (length and keyed hash instead) and user parts of addresses (hash tokens, domain kept)")
	fs.StringVar(&o.redactKey, "redact-key", "", "key for --redact's hashes, to compare outputs of several runs (env SIPSILO_REDACT_KEY); default: random per run")
	fs.DurationVar(&o.lockTimeout, "lock-timeout", time.Second, "how long to wait for the file while another process holds it")
	fs.IntVar(&o.limit, "limit", 50, "most items per page; 0: all")
	fs.StringVar(&o.after, "after", "", "continue a list after this cursor (the next value of the previous page)")
	fs.StringVar(&o.state, "state", string(kv.StateDead), "for dead: the state to list (dead, expired, delivered, …)")
	if err := setFromEnv(fs, lookupEnv, envNames("db", "redact-key", "lock-timeout")); err != nil {
		return o, nil, err
	}
	// Flags may come before and after the view: parse, take one positional
	// argument, parse the rest again.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, nil, err
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) == 0 {
		fs.Usage()
		return o, nil, errUsage
	}
	n, ok := inspectViews[pos[0]]
	if !ok {
		fmt.Fprintf(stderr, "sipsilo inspect: unknown view %q\n\n", pos[0])
		fs.Usage()
		return o, nil, errUsage
	}
	if got := len(pos) - 1; got < n[0] || got > n[1] {
		fmt.Fprintf(stderr, "sipsilo inspect %s: wrong number of arguments\n\n", pos[0])
		fs.Usage()
		return o, nil, errUsage
	}
	if o.limit < 0 || o.lockTimeout <= 0 || o.state == "" {
		return o, nil, errors.New("inspect: --limit must be >= 0, --lock-timeout positive, --state not empty")
	}
	return o, pos, nil
}

// runInspect is `sipsilo inspect`.
func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, pos, err := parseInspect(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	out := &inspectOut{w: stdout, json: o.json, now: time.Now()}
	if o.redact {
		key := []byte(o.redactKey)
		if len(key) == 0 {
			key = make([]byte, 32)
			rand.Read(key)
		}
		out.red = &redactor{key: key}
	}
	return guardDamage(o.db, func() error {
		s, err := openForInspect(o.db, o.lockTimeout)
		if err != nil {
			return err
		}
		defer s.Close(ctx)
		if n := s.Unapplied(); n > 0 {
			fmt.Fprintf(stderr, "sipsilo inspect: %d journal records beside %s are not in it yet "+
				"(the daemon ended before applying them); sipsilo serve applies them when it starts\n", n, o.db)
		}
		return inspectView(s, o, pos, out)
	})
}

// openForInspect opens path read-only, sharing it with other readers and never
// writing to it, and says plainly what is wrong when it cannot.
func openForInspect(path string, lockTimeout time.Duration) (*kv.Store, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("inspect: %s does not exist (give the daemon's file with --db or SIPSILO_DB)", path)
	case err != nil:
		return nil, fmt.Errorf("inspect: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("inspect: %s is not a file", path)
	case fi.Size() == 0:
		// bbolt would try to initialise an empty file, which read-only it cannot.
		return nil, fmt.Errorf("inspect: %s is empty: %w", path, kv.ErrCorrupt)
	}
	s, err := kv.Open(path, kv.Options{ReadOnly: true, LockTimeout: lockTimeout})
	if errors.Is(err, kv.ErrLocked) {
		return nil, fmt.Errorf("inspect: %s is in use by a running sipsilo serve (still locked after %v); "+
			"read it live through the admin API instead: curl -H \"Authorization: Bearer $SIPSILO_ADMIN_TOKEN\" http://%s/api/v1/stats",
			path, lockTimeout, adminAddr())
	}
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	if err := s.Verify(); err != nil {
		s.Close(context.Background())
		return nil, fmt.Errorf("inspect: %w", err)
	}
	return s, nil
}

// adminAddr is where the admin API most likely listens: serve's --http as the
// environment gives it, or its default.
func adminAddr() string {
	if v, ok := os.LookupEnv("SIPSILO_HTTP"); ok && v != "" {
		return v
	}
	return "127.0.0.1:8484"
}

// guardDamage turns a panic or a memory fault while reading (bbolt trusts the
// page structure it finds, and a damaged file can break that trust) into an error.
func guardDamage(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("inspect: %s is damaged: %w: %v", path, kv.ErrCorrupt, r)
		}
	}()
	return fn()
}
