// Package asteriskconf ships the Asterisk 22 configuration sipsilo needs: the
// message context that offers each MESSAGE to sipsilo and falls back to
// Asterisk's stock MessageSend, the endpoint setting that routes messages
// through it, the AMI user sipsilo logs in as and the modules behind them.
// README.md in this directory says where each file goes and why.
//
// The directory name has a dash (asterisk-conf), so the package is named
// asteriskconf.
package asteriskconf

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Files holds the shipped files, named as they go into Asterisk's conf
// directory. Files ending in .conf are complete files to #include; files
// ending in .snippet are fragments to merge by hand.
//
//go:embed *.conf *.snippet
var Files embed.FS

// The values below appear verbatim in the shipped files, so Render can
// substitute an operator's settings for them; render_test.go keeps them in
// step.
const (
	// Context is the message context of extensions_sipsilo.conf.
	Context = "sipsilo-messages"
	// IntakeBase is the scheme, default listen address and path of the CURL()
	// call in the context.
	IntakeBase = "http://127.0.0.1:8484" + IntakePath
	// IntakePath is the handler's path.
	IntakePath = "/ast/message"
	// HTTPTimeoutSeconds is CURLOPT(httptimeout): how long Asterisk waits for
	// sipsilo's answer before it delivers the message as stock. sipsilo's own
	// answer deadline stays well below it (docs/decisions.md §31).
	HTTPTimeoutSeconds = 2
	// AMIUser is the manager section of manager_sipsilo.conf; AMISecret its
	// shipped secret, which operators are told to change.
	AMIUser   = "sipsilo"
	AMISecret = "1234"
	// Owned is the intake's answer when it owns the message; anything else
	// makes the context deliver it as stock.
	Owned = "owned"
)

// Modules are the modules the shipped files need, as modules.conf names them.
var Modules = []string{"res_pjsip_messaging.so", "func_curl.so", "res_curl.so", "func_base64.so", "func_uri.so"}

// Options are an operator's settings for Render. Zero values take the shipped
// ones.
type Options struct {
	// HTTPAddr is where sipsilo serve listens (its --http), host:port.
	HTTPAddr string
	// AMISecret is the manager secret (sipsilo serve --ami-secret).
	AMISecret string
}

// File is one rendered file, Path relative to Asterisk's conf directory.
type File struct {
	Path string
	Data []byte
	// Secret is set when Data holds a password.
	Secret bool
}

// ErrInvalid is wrapped by every error about an option's value.
var ErrInvalid = errors.New("invalid value")

// Render returns the shipped files with o's settings in place, in the embedded
// order. With zero Options every file is byte-identical to the shipped one.
func Render(o Options) ([]File, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	var out []File
	err := fs.WalkDir(Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := Files.ReadFile(path)
		if err != nil {
			return err
		}
		f := File{Path: path, Data: data}
		switch path {
		case "extensions_sipsilo.conf":
			f.Data, err = replaceOnce(data, IntakeBase, IntakeURLFor(o.HTTPAddr))
		case "manager_sipsilo.conf":
			f.Data, err = replaceOnce(data, "secret = "+AMISecret+"\n", "secret = "+o.AMISecret+"\n")
			f.Secret = true
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, f)
		return nil
	})
	return out, err
}

// IntakeURLFor is the intake URL (without its query) for sipsilo listening at
// httpAddr.
func IntakeURLFor(httpAddr string) string { return "http://" + httpAddr + IntakePath }

func (o *Options) fill() error {
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8484"
	}
	if o.AMISecret == "" {
		o.AMISecret = AMISecret
	}
	host, port, err := net.SplitHostPort(o.HTTPAddr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 1 || n > 65535 || !validHost(host) {
		return fmt.Errorf("%w: http address %q: want host:port with a port in 1..65535", ErrInvalid, o.HTTPAddr)
	}
	o.HTTPAddr = net.JoinHostPort(host, port)
	// The secret is a value in an Asterisk config file: ';' starts a comment
	// and outer blanks are trimmed; it must stay on its line.
	s := o.AMISecret
	if strings.ContainsAny(s, ";\r\n\x00") || strings.TrimSpace(s) != s {
		return fmt.Errorf("%w: ami secret: no ';', line breaks or outer blanks (Asterisk's config syntax)", ErrInvalid)
	}
	return nil
}

// validHost accepts an IP address or a DNS name: nothing that could end the
// URL or start a ${...} expansion in the dialplan.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func replaceOnce(data []byte, old, repl string) ([]byte, error) {
	s := string(data)
	if strings.Count(s, old) != 1 {
		return nil, fmt.Errorf("%q not found exactly once", old)
	}
	return []byte(strings.Replace(s, old, repl, 1)), nil
}
