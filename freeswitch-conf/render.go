package freeswitchconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sipsilo/sipsilo/dialplan"
)

// Options are an operator's settings for Render. Zero values take the shipped ones.
type Options struct {
	// HTTPAddr is where sipsilo serve listens (its --http), host:port.
	HTTPAddr string
	// User and Password become the binding's gateway-credentials (sipsilo serve
	// --chatplan-user / --chatplan-password); both or neither.
	User, Password string
	// ESLAddr is where FreeSWITCH's event socket listens, ip:port (sipsilo serve --esl).
	ESLAddr string
	// ESLPassword is the event socket password (sipsilo serve --esl-password).
	ESLPassword string
}

// File is one rendered file, Path relative to FreeSWITCH's conf directory.
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
		case "autoload_configs/xml_curl.conf.xml":
			f.Data, f.Secret, err = o.xmlCurl(data)
		case "autoload_configs/event_socket.conf.xml":
			f.Data, err = o.eventSocket(data)
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

// ChatplanURLFor is the binding's gateway-url for sipsilo listening at httpAddr.
func ChatplanURLFor(httpAddr string) string {
	return strings.Replace(ChatplanURL, "127.0.0.1:8484", httpAddr, 1)
}

func (o *Options) fill() error {
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8484"
	}
	if o.ESLAddr == "" {
		o.ESLAddr = ESLAddress
	}
	if o.ESLPassword == "" {
		o.ESLPassword = ESLPassword
	}
	host, port, err := net.SplitHostPort(o.HTTPAddr)
	if err != nil || !validHost(host) || !validPort(port) {
		return fmt.Errorf("%w: http address %q: want host:port with a port in 1..65535", ErrInvalid, o.HTTPAddr)
	}
	o.HTTPAddr = net.JoinHostPort(host, port) // brackets an IPv6 literal for the URL
	host, port, err = net.SplitHostPort(o.ESLAddr)
	if _, perr := netip.ParseAddr(host); err != nil || perr != nil || !validPort(port) {
		return fmt.Errorf("%w: esl address %q: want ip:port (mod_event_socket listens on an IP address)", ErrInvalid, o.ESLAddr)
	}
	if (o.User == "") != (o.Password == "") {
		return fmt.Errorf("%w: give both user and password, or neither", ErrInvalid)
	}
	if strings.Contains(o.User, ":") {
		return fmt.Errorf("%w: user: libcurl splits user:password at the first colon, so the user may not contain ':'", ErrInvalid)
	}
	for _, v := range []struct{ name, s string }{
		{"user", o.User}, {"password", o.Password}, {"esl password", o.ESLPassword},
	} {
		if err := plainText(v.s); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalid, v.name, err)
		}
	}
	if strings.TrimSpace(o.ESLPassword) != o.ESLPassword {
		return fmt.Errorf("%w: esl password: leading or trailing spaces do not survive the ESL auth line", ErrInvalid)
	}
	return nil
}

// validHost accepts an IP address or a DNS name: nothing that could end the URL,
// start a ${...} expansion or need escaping.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// plainText refuses what no XML attribute can carry unchanged.
func plainText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xFFFE || r == 0xFFFF {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// replaceOnce swaps the one occurrence of old in data, or fails: the shipped file
// and this renderer must agree.
func replaceOnce(data []byte, old, repl string) ([]byte, error) {
	if n := bytes.Count(data, []byte(old)); n != 1 {
		return nil, fmt.Errorf("shipped file has %d occurrences of %q, want 1", n, old)
	}
	return bytes.Replace(data, []byte(old), []byte(repl), 1), nil
}

const credentialsLine = `<!-- <param name="gateway-credentials" value="sipsilo:change-me"/> -->`

func (o *Options) xmlCurl(data []byte) ([]byte, bool, error) {
	// The URL template keeps its literal ${...}: only the host:port, validated
	// above, changes.
	data, err := replaceOnce(data, `value="`+ChatplanURLAttr(ChatplanURL)+`"`, `value="`+ChatplanURLAttr(ChatplanURLFor(o.HTTPAddr))+`"`)
	if err != nil || o.User == "" {
		return data, false, err
	}
	cred, err := dialplan.EscapeAttr(o.User + ":" + o.Password)
	if err != nil {
		return nil, false, err
	}
	data, err = replaceOnce(data, credentialsLine, `<param name="gateway-credentials" value="`+cred+`"/>`)
	return data, true, err
}

func (o *Options) eventSocket(data []byte) ([]byte, error) {
	defHost, defPort, _ := net.SplitHostPort(ESLAddress)
	host, port, _ := net.SplitHostPort(o.ESLAddr)
	pass, err := dialplan.EscapeAttr(o.ESLPassword)
	if err != nil {
		return nil, err
	}
	for _, r := range [][2]string{
		{`<param name="listen-ip" value="` + defHost + `"/>`, `<param name="listen-ip" value="` + host + `"/>`},
		{`<param name="listen-port" value="` + defPort + `"/>`, `<param name="listen-port" value="` + port + `"/>`},
		{`<param name="password" value="` + ESLPassword + `"/>`, `<param name="password" value="` + pass + `"/>`},
	} {
		if data, err = replaceOnce(data, r[0], r[1]); err != nil {
			return nil, err
		}
	}
	return data, nil
}
