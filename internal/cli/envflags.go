package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// envName is the environment variable for a flag: SIPSILO_ and the flag's name
// in capitals, dashes as underscores (--esl-password is SIPSILO_ESL_PASSWORD).
// Every command uses the same variable for the same setting, so one environment
// configures serve, inspect, fs-config and check-fs alike.
func envName(flagName string) string {
	return "SIPSILO_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envNames maps each named flag to its envName.
func envNames(flags ...string) map[string]string {
	m := make(map[string]string, len(flags))
	for _, f := range flags {
		m[f] = envName(f)
	}
	return m
}

// setFromEnv sets each flag of fs named in vars (flag name → variable) whose
// variable is set. Call it before fs.Parse, so that the command line wins.
func setFromEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool), vars map[string]string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name, ok := vars[f.Name]
		if !ok {
			return
		}
		if v, ok := lookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	return errors.Join(errs...)
}
