package cli

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	astconf "github.com/sipsilo/sipsilo/asterisk-conf"
	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
)

// runASTConfig is `sipsilo ast-config`: it writes the Asterisk configuration
// for sipsilo's address and AMI secret into --out, plus INSTALL.txt saying
// where each file goes.
func runASTConfig(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	var o astconf.Options
	var out string
	var force bool
	fs := flag.NewFlagSet("sipsilo ast-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&out, "out", "", "directory to write the files to (created if missing)")
	fs.StringVar(&o.HTTPAddr, "http", "127.0.0.1:8484", "address sipsilo serve listens on (its --http)")
	fs.StringVar(&o.AMISecret, "ami-secret", astconf.AMISecret, "AMI secret of the sipsilo manager user (prefer env SIPSILO_AMI_SECRET)")
	fs.BoolVar(&force, "force", false, "overwrite files that already exist in --out")
	if err := setFromEnv(fs, lookupEnv, envNames("http", "ami-secret")); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("ast-config: unexpected argument %q", fs.Arg(0))
	}
	if out == "" {
		fmt.Fprintln(stderr, "ast-config: --out DIR is required")
		fs.Usage()
		return errUsage
	}
	rendered, err := astconf.Render(o)
	if err != nil {
		return fmt.Errorf("ast-config: %w", err)
	}
	files := make([]conf.File, 0, len(rendered)+1)
	for _, f := range rendered {
		files = append(files, conf.File{Path: f.Path, Data: f.Data, Secret: f.Secret})
	}
	files = append(files, conf.File{Path: "INSTALL.txt", Data: []byte(astInstallText(o))})
	if err := writeFiles(out, files, force); err != nil {
		return fmt.Errorf("ast-config: %w", err)
	}
	for _, f := range files {
		fmt.Fprintln(stdout, "wrote", filepath.Join(out, filepath.FromSlash(f.Path)))
	}
	fmt.Fprintf(stdout, "\nThen see %s for where each file goes, and run `sipsilo check-ast`.\n",
		filepath.Join(out, "INSTALL.txt"))
	return nil
}

func astInstallText(o astconf.Options) string {
	return `sipsilo: Asterisk 22 configuration (written by sipsilo ast-config)

<etc> is Asterisk's configuration directory (usually /etc/asterisk).

  extensions_sipsilo.conf
      -> <etc>/extensions_sipsilo.conf, and add the line
         #include extensions_sipsilo.conf
         at the end of <etc>/extensions.conf.
         Apply: asterisk -rx 'dialplan reload'
  pjsip_sipsilo.conf.snippet
      -> MERGE its line into every endpoint (or the template they share) in
         <etc>/pjsip.conf whose messages sipsilo keeps.
         Apply: asterisk -rx 'module reload res_pjsip.so'
  manager_sipsilo.conf
      -> <etc>/manager_sipsilo.conf, and add the line
         #include manager_sipsilo.conf
         at the end of <etc>/manager.conf ([general] needs enabled = yes).
         Apply: asterisk -rx 'manager reload'
  modules.conf.snippet
      -> MERGE its load lines into <etc>/modules.conf [modules] (with
         autoload = yes, keep those modules off every noload line).
         Apply: asterisk -rx 'module load <name>' for each one missing.

manager_sipsilo.conf holds the AMI secret (mode 0600 here); keep it readable
by Asterisk only.

sipsilo must run with the matching settings:
  SIPSILO_AMI_SECRET=<the AMI secret> sipsilo serve --pbx asterisk --http ` + o.HTTPAddr + `

Then check the live Asterisk:
  sipsilo check-ast --http ` + o.HTTPAddr + `

Why each line is there: asterisk-conf/README.md in sipsilo's source.
`
}
