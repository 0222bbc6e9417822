package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
)

// fsConfigEnv maps fs-config's flags to the environment variables serve reads for
// the same settings, so one environment configures both commands.
var fsConfigEnv = map[string]string{
	"http":         envName("http"),
	"esl":          envName("esl"),
	"esl-password": envName("esl-password"),
	"user":         envName("chatplan-user"),
	"password":     envName("chatplan-password"),
}

// runFSConfig is `sipsilo fs-config`: it writes the FreeSWITCH configuration for
// sipsilo's address and credentials into --out, plus INSTALL.txt saying where each
// file goes.
func runFSConfig(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	var o conf.Options
	var out string
	var force bool
	fs := flag.NewFlagSet("sipsilo fs-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&out, "out", "", "directory to write the files to (created if missing)")
	fs.StringVar(&o.HTTPAddr, "http", "127.0.0.1:8484", "address sipsilo serve listens on (its --http)")
	fs.StringVar(&o.User, "user", "", "chatplan basic-auth user (serve --chatplan-user; env SIPSILO_CHATPLAN_USER)")
	fs.StringVar(&o.Password, "password", "", "chatplan basic-auth password (prefer env SIPSILO_CHATPLAN_PASSWORD)")
	fs.StringVar(&o.ESLAddr, "esl", conf.ESLAddress, "ip:port FreeSWITCH's event socket listens on (serve --esl)")
	fs.StringVar(&o.ESLPassword, "esl-password", conf.ESLPassword, "event socket password (prefer env SIPSILO_ESL_PASSWORD)")
	fs.BoolVar(&force, "force", false, "overwrite files that already exist in --out")
	if err := setFromEnv(fs, lookupEnv, fsConfigEnv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("fs-config: unexpected argument %q", fs.Arg(0))
	}
	if out == "" {
		fmt.Fprintln(stderr, "fs-config: --out DIR is required")
		fs.Usage()
		return errUsage
	}
	files, err := conf.Render(o)
	if err != nil {
		return fmt.Errorf("fs-config: %w", err)
	}
	install := conf.File{Path: "INSTALL.txt", Data: []byte(installText(o))}
	files = append(files, install)
	if err := writeFiles(out, files, force); err != nil {
		return fmt.Errorf("fs-config: %w", err)
	}
	for _, f := range files {
		fmt.Fprintln(stdout, "wrote", filepath.Join(out, filepath.FromSlash(f.Path)))
	}
	if host, _, err := net.SplitHostPort(o.ESLAddr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsLoopback() {
			fmt.Fprintln(stdout, "\nnote: event_socket.conf.xml still admits loopback clients only (apply-inbound-acl loopback.auto):"+
				"\n      if sipsilo runs on another host, replace that ACL with one that admits sipsilo's address.")
		}
	}
	fmt.Fprintf(stdout, "\nRun sipsilo with the matching settings:\n  %s\n", serveHint(o))
	fmt.Fprintf(stdout, "Then see %s for where each file goes, and run `sipsilo check-fs`.\n",
		filepath.Join(out, "INSTALL.txt"))
	return nil
}

// writeFiles refuses before writing anything when a file exists and force is off,
// so a refused run leaves --out as it was.
func writeFiles(dir string, files []conf.File, force bool) error {
	if !force {
		var exist []string
		for _, f := range files {
			p := filepath.Join(dir, filepath.FromSlash(f.Path))
			if _, err := os.Lstat(p); err == nil {
				exist = append(exist, p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if len(exist) > 0 {
			return fmt.Errorf("not overwriting %s (use --force)", strings.Join(exist, ", "))
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if f.Secret {
			mode = 0o600
		}
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			return err
		}
		// WriteFile keeps the mode of a file it overwrites.
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	return nil
}

// serveHint is the serve command line that matches o. Passwords are never echoed:
// they go through the environment.
func serveHint(o conf.Options) string {
	var env, flags []string
	flags = append(flags, "--http "+o.HTTPAddr, "--esl "+o.ESLAddr)
	if o.ESLPassword != conf.ESLPassword {
		env = append(env, "SIPSILO_ESL_PASSWORD=<the event socket password>")
	}
	if o.User != "" {
		flags = append(flags, "--chatplan-user "+shellQuote(o.User))
		env = append(env, "SIPSILO_CHATPLAN_PASSWORD=<the chatplan password>")
	}
	return strings.TrimSpace(strings.Join(env, " ") + " sipsilo serve " + strings.Join(flags, " "))
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func installText(o conf.Options) string {
	var b strings.Builder
	b.WriteString(`sipsilo: FreeSWITCH configuration (written by sipsilo fs-config)

<conf> is FreeSWITCH's configuration directory (the one holding freeswitch.xml):
/etc/freeswitch for packages, /usr/local/freeswitch/conf for a source build.

  autoload_configs/xml_curl.conf.xml
      -> <conf>/autoload_configs/xml_curl.conf.xml (replace; if you already have
         bindings, copy the <binding name="chatplan"> block in as the FIRST one).
         Apply: fs_cli -x 'reload mod_xml_curl' (first time: load mod_xml_curl).
  autoload_configs/event_socket.conf.xml
      -> <conf>/autoload_configs/event_socket.conf.xml (replace).
         Apply: restart FreeSWITCH.
  autoload_configs/modules.conf.xml.snippet
      -> MERGE its <load> lines into <conf>/autoload_configs/modules.conf.xml
         (vanilla has mod_xml_curl and mod_sms commented out: uncomment them).
         Apply: fs_cli -x 'load mod_xml_curl'; fs_cli -x 'load mod_sms'.
  chatplan/default.xml
      -> <conf>/chatplan/default.xml (replace: removes vanilla's echo).
         Apply: fs_cli -x reloadxml
  sip_profiles/internal-ping-params.xml.snippet
      -> MERGE its <param> lines at the END of <settings> in
         <conf>/sip_profiles/internal.xml (and every profile phones register to).
         Apply: fs_cli -x 'sofia profile internal rescan'

Never copy a .snippet file into those directories under a .xml name:
FreeSWITCH includes every *.xml file there.

event_socket.conf.xml`)
	if o.User != "" {
		b.WriteString(" and xml_curl.conf.xml hold passwords (mode 0600 here); keep\nthem readable by FreeSWITCH only.")
	} else {
		b.WriteString(" holds the ESL password (mode 0600 here); keep it readable\nby FreeSWITCH only.")
	}
	b.WriteString("\n\nsipsilo must run with the matching settings:\n  ")
	b.WriteString(serveHint(o))
	b.WriteString("\n\nThen check the live FreeSWITCH:\n  sipsilo check-fs --esl " + o.ESLAddr + " --http " + o.HTTPAddr + "\n")
	b.WriteString("\nWhy each line is there: freeswitch-conf/README.md in sipsilo's source.\n")
	return b.String()
}
