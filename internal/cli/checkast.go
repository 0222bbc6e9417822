package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	astconf "github.com/sipsilo/sipsilo/asterisk-conf"
	"github.com/sipsilo/sipsilo/internal/asterisk"
)

// checkAST holds one `sipsilo check-ast` run.
type checkAST struct {
	amiAddr, amiUser, amiSecret string
	httpAddr                    string // sipsilo's --http; "" skips the URL check
	endpoints                   string // comma-separated; "" checks every endpoint
	timeout                     time.Duration

	cli    *asterisk.Client
	out    io.Writer
	failed int
}

// runCheckAST is `sipsilo check-ast`: it logs in to Asterisk's manager (AMI)
// with sipsilo's own client and checks what sipsilo needs, one line per
// check, naming the file to change for each failure. It fails when any check
// failed.
func runCheckAST(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	c := &checkAST{out: stdout}
	fs := flag.NewFlagSet("sipsilo check-ast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.amiAddr, "ami", "127.0.0.1:5038", "Asterisk manager (AMI) address (env SIPSILO_AMI)")
	fs.StringVar(&c.amiUser, "ami-user", astconf.AMIUser, "AMI user (env SIPSILO_AMI_USER)")
	fs.StringVar(&c.amiSecret, "ami-secret", astconf.AMISecret, "AMI secret (prefer env SIPSILO_AMI_SECRET)")
	fs.StringVar(&c.httpAddr, "http", "", "address sipsilo serve listens on; the message context must call it (env SIPSILO_HTTP)")
	fs.StringVar(&c.endpoints, "endpoints", "", "comma-separated PJSIP endpoints to check (default: every endpoint)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "bound on connecting and on each check")
	if err := setFromEnv(fs, lookupEnv, envNames("ami", "ami-user", "ami-secret", "http")); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("check-ast: unexpected argument %q", fs.Arg(0))
	}
	if c.timeout <= 0 {
		return errors.New("check-ast: --timeout must be positive")
	}
	return c.run(ctx)
}

func (c *checkAST) run(ctx context.Context) error {
	c.cli = asterisk.New(asterisk.Config{Addr: c.amiAddr, User: c.amiUser, Secret: c.amiSecret,
		DialTimeout: c.timeout, ActionTimeout: c.timeout})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.cli.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	if !c.connect(ctx) {
		return errors.New("check-ast: cannot log in to Asterisk's manager")
	}
	c.checkModules(ctx)
	c.checkContext(ctx)
	c.checkEndpoints(ctx)
	if c.failed > 0 {
		return fmt.Errorf("check-ast: %d check(s) failed", c.failed)
	}
	fmt.Fprintln(c.out, "all checks passed")
	return nil
}

func (c *checkAST) ok(format string, a ...any) { fmt.Fprintf(c.out, "ok    "+format+"\n", a...) }

func (c *checkAST) fail(what string, fixes ...string) {
	c.failed++
	fmt.Fprintln(c.out, "FAIL  "+what)
	for _, f := range fixes {
		fmt.Fprintln(c.out, "      fix: "+f)
	}
}

func (c *checkAST) action(ctx context.Context, name string, fields ...asterisk.Field) (*asterisk.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.cli.Action(ctx, name, fields...)
}

// connect waits for the login and explains a failure with the client's last
// error.
func (c *checkAST) connect(ctx context.Context) bool {
	wctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.cli.WaitConnected(wctx) == nil {
		c.ok("ami: logged in to %s as %s", c.amiAddr, c.amiUser)
		return true
	}
	cause := c.cli.Err()
	switch {
	case cause != nil && errors.Is(cause, syscall.ECONNREFUSED):
		c.fail("ami: connection refused at "+c.amiAddr,
			"is Asterisk running? manager.conf [general] needs enabled = yes, and port/bindaddr must match --ami (then asterisk -rx 'manager reload')")
	case errors.Is(cause, asterisk.ErrAuth):
		c.fail("ami: login as "+c.amiUser+" refused by "+c.amiAddr,
			"manager_sipsilo.conf: the ["+c.amiUser+"] secret must equal --ami-secret (env SIPSILO_AMI_SECRET) and permit must admit this host; "+
				"manager.conf must #include manager_sipsilo.conf (then asterisk -rx 'manager reload')")
	case errors.Is(cause, asterisk.ErrNotAMI):
		c.fail(c.amiAddr+" is not Asterisk's manager", "pass manager.conf's bindaddr:port as --ami")
	default:
		c.fail(fmt.Sprintf("ami: no login at %s within %v (%v)", c.amiAddr, c.timeout, cause),
			"check --ami against manager.conf [general] port and bindaddr, or raise --timeout")
	}
	return false
}

// checkModules asks ModuleCheck for each module the shipped files need.
func (c *checkAST) checkModules(ctx context.Context) {
	for _, m := range astconf.Modules {
		name := strings.TrimSuffix(m, ".so")
		_, err := c.action(ctx, "ModuleCheck", asterisk.Field{Key: "Module", Value: name})
		switch {
		case err == nil:
			c.ok("module %s loaded", m)
		case errors.Is(err, asterisk.ErrAction):
			c.fail("module "+m+" not loaded",
				fmt.Sprintf("modules.conf: remove any 'noload => %s' and add 'load => %s' (modules.conf.snippet), then asterisk -rx 'module load %s'", m, m, m))
		default:
			c.fail(fmt.Sprintf("module %s: %v", m, err))
		}
	}
}

// checkContext reads sipsilo's message context back from the dialplan.
func (c *checkAST) checkContext(ctx context.Context) {
	res, err := c.action(ctx, "ShowDialPlan", asterisk.Field{Key: "Context", Value: astconf.Context})
	if err != nil {
		c.fail("dialplan: context ["+astconf.Context+"] not loaded ("+errText(err)+")",
			"copy extensions_sipsilo.conf (sipsilo ast-config) to Asterisk's conf directory and add '#include extensions_sipsilo.conf' to extensions.conf, then asterisk -rx 'dialplan reload'")
		return
	}
	var curl, gotoOwned, send bool
	var url string
	for _, ev := range res.Events {
		data := ev.Get("AppData")
		switch ev.Get("Application") {
		case "Set":
			if i := strings.Index(data, "${CURL("); i >= 0 {
				curl, url = true, data[i+len("${CURL("):]
				url, _, _ = strings.Cut(url, "?")
			}
		case "GotoIf":
			gotoOwned = gotoOwned || strings.Contains(data, `"`+astconf.Owned+`"`)
		case "MessageSend":
			send = true
		}
	}
	if !curl || !gotoOwned || !send {
		c.fail("dialplan: context ["+astconf.Context+"] lacks the CURL call, the owned branch or the stock MessageSend",
			"extensions_sipsilo.conf: replace it with the file sipsilo ast-config writes, then asterisk -rx 'dialplan reload'")
		return
	}
	if c.httpAddr != "" && url != astconf.IntakeURLFor(c.httpAddr) {
		c.fail(fmt.Sprintf("dialplan: the message context calls %s, but sipsilo listens at %s", url, c.httpAddr),
			"extensions_sipsilo.conf: write it again with sipsilo ast-config --http "+c.httpAddr+", then asterisk -rx 'dialplan reload'")
		return
	}
	c.ok("dialplan: context [%s] offers each MESSAGE to %s and falls back to MessageSend", astconf.Context, url)
}

// checkEndpoints checks each endpoint's message_context.
func (c *checkAST) checkEndpoints(ctx context.Context) {
	var names []string
	if c.endpoints != "" {
		for _, n := range strings.Split(c.endpoints, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	} else {
		res, err := c.action(ctx, "PJSIPShowEndpoints")
		if err != nil {
			c.fail("pjsip: no endpoints listed ("+errText(err)+")", "pjsip.conf: define the endpoints phones register as")
			return
		}
		for _, ev := range res.Events {
			if n := ev.Get("ObjectName"); n != "" && len(names) < 10_000 {
				names = append(names, n)
			}
		}
	}
	var wrong []string
	for _, n := range names {
		res, err := c.action(ctx, "PJSIPShowEndpoint", asterisk.Field{Key: "Endpoint", Value: n})
		if err != nil {
			c.fail("pjsip: endpoint "+n+": "+errText(err), "pjsip.conf: is there an endpoint named "+n+"?")
			continue
		}
		mc := ""
		for _, ev := range res.Events {
			if ev.Get("Event") == "EndpointDetail" {
				mc = ev.Get("MessageContext")
			}
		}
		if mc != astconf.Context {
			wrong = append(wrong, fmt.Sprintf("%s (message_context = %q)", n, mc))
		}
	}
	if len(wrong) > 0 {
		c.fail("pjsip: endpoints whose MESSAGEs bypass sipsilo: "+strings.Join(wrong, ", "),
			"pjsip.conf: set 'message_context = "+astconf.Context+"' on these endpoints or their template (pjsip_sipsilo.conf.snippet), "+
				"then asterisk -rx 'module reload res_pjsip.so'")
		return
	}
	c.ok("pjsip: %d endpoint(s) route MESSAGEs through [%s]", len(names), astconf.Context)
}

// errText is an AMI error without the package's prefix.
func errText(err error) string {
	return strings.TrimPrefix(err.Error(), "asterisk: ")
}
