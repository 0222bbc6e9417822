package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// The settings of `sipsilo serve` come from four places; the first that sets a
// setting wins:
//
//  1. the command line (--window 8),
//  2. the environment (SIPSILO_WINDOW=8),
//  3. the TOML file named by --config or SIPSILO_CONFIG (window = 8),
//  4. the built-in default.
//
// The file's keys are the flag names, so one list of names serves all three.

// configFlag names the TOML file; it is read before the other flags are set, so
// it is looked up in the arguments and the environment by hand.
const configFlag = "config"

// configPath returns the --config value from args (either -config or --config,
// with "=" or as the next argument), else SIPSILO_CONFIG, else "".
func configPath(args []string, lookupEnv func(string) (string, bool)) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			break // flag parsing stops here too
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != configFlag {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	if v, ok := lookupEnv("SIPSILO_CONFIG"); ok {
		return v
	}
	return ""
}

// applyConfigFile sets the flags of fs from the TOML file at path. Unknown keys
// are an error: a misspelt setting silently left at its default is worse than a
// daemon that does not start.
func applyConfigFile(fs *flag.FlagSet, path string, stderr io.Writer) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var values map[string]any
	if _, err := toml.Decode(string(raw), &values); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if k == configFlag || fs.Lookup(k) == nil {
			errs = append(errs, fmt.Errorf("config %s: unknown setting %q (settings are serve's flag names, see sipsilo serve -h)", path, k))
			continue
		}
		s, err := tomlValue(values[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("config %s: %s: %w", path, k, err))
			continue
		}
		if err := fs.Set(k, s); err != nil {
			errs = append(errs, fmt.Errorf("config %s: %s = %q: %w", path, k, s, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	warnIfReadable(path, values, stderr)
	return nil
}

// tomlValue turns one TOML value into the text its flag parses. Lists become the
// comma-separated form the list flags (domains, profiles, skip-types) take.
func tomlValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok || strings.Contains(s, ",") {
				return "", errors.New("a list must hold strings without commas")
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("unsupported value of type %T (use a string, number, boolean or list of strings)", v)
}

// secretKeys are the settings that should not sit in a file others can read.
var secretKeys = []string{"esl-password", "chatplan-password", "mysql-dsn", "admin-token"}

func warnIfReadable(path string, values map[string]any, stderr io.Writer) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return
	}
	for _, k := range secretKeys {
		if _, ok := values[k]; ok {
			fmt.Fprintf(stderr, "sipsilo: warning: %s holds %s and is readable by every user (chmod 600 it, or pass secrets as SIPSILO_* environment)\n", path, k)
			return
		}
	}
}
