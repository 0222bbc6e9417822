package astreal

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	asteriskconf "github.com/sipsilo/sipsilo/asterisk-conf"

	"github.com/sipsilo/sipsilo/internal/testport"
)

//go:embed conf
var baseConf embed.FS

// ports are what the conf gets so that test processes can run Asterisks side
// by side.
type ports struct {
	sip, ami, http int
	rtpStart       int
}

// writeConf renders the base conf with the options and ports into etc/ and
// writes asterisk.conf with every directory under the working directory.
func (a *Ast) writeConf() error {
	etc := a.ConfDir()
	if err := os.RemoveAll(etc); err != nil {
		return err
	}
	o := a.opts
	mctx := o.MessageContext
	if mctx == "" {
		mctx = FixtureContext
	}
	amiUser := fmt.Sprintf("[%s]\nsecret = %s\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = all\nwrite = all\n",
		AMIUser, o.amiSecret())
	files := map[string][]byte{}
	var extensions string
	if o.Sipsilo != nil {
		so := *o.Sipsilo
		so.AMISecret = o.amiSecret()
		rendered, err := asteriskconf.Render(so)
		if err != nil {
			return err
		}
		for _, f := range rendered {
			if strings.HasSuffix(f.Path, ".conf") {
				files[f.Path] = f.Data
			}
		}
		// As README.md in asterisk-conf tells an operator: include the two
		// files, point the endpoints at the context.
		amiUser = "#include manager_sipsilo.conf\n"
		extensions = "#include extensions_sipsilo.conf\n"
		if o.MessageContext == "" {
			mctx = asteriskconf.Context
		}
	}
	for name, data := range o.Files {
		files[name] = data
		// An operator's ast-config output, installed as its INSTALL.txt says.
		switch name {
		case "manager_sipsilo.conf":
			amiUser = "#include manager_sipsilo.conf\n"
		case "extensions_sipsilo.conf":
			extensions = "#include extensions_sipsilo.conf\n"
			if o.MessageContext == "" {
				mctx = asteriskconf.Context
			}
		}
	}
	var noload strings.Builder
	for _, m := range o.NoLoad {
		fmt.Fprintf(&noload, "noload => %s\n", m)
	}
	repl := strings.NewReplacer(
		"{{SIP_PORT}}", strconv.Itoa(a.p.sip),
		"{{AMI_PORT}}", strconv.Itoa(a.p.ami),
		"{{HTTP_PORT}}", strconv.Itoa(a.p.http),
		"{{AMI_SECRET}}", o.amiSecret(),
		"{{RTP_START}}", strconv.Itoa(a.p.rtpStart),
		"{{RTP_END}}", strconv.Itoa(a.p.rtpStart+19),
		"{{UDPTL_START}}", strconv.Itoa(a.p.rtpStart+20),
		"{{UDPTL_END}}", strconv.Itoa(a.p.rtpStart+39),
		"{{MESSAGE_CONTEXT}}", mctx,
		"{{NOLOAD}}", noload.String(),
		"{{EXTRA_CONTEXTS}}", extensions+o.Extensions,
		"{{AMI_USER}}", amiUser,
	)
	err := fs.WalkDir(baseConf, "conf", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := baseConf.ReadFile(path)
		if err != nil {
			return err
		}
		return writeFile(filepath.Join(etc, strings.TrimPrefix(path, "conf/")), []byte(repl.Replace(string(data))))
	})
	if err != nil {
		return err
	}
	for name, data := range files {
		if err := writeFile(filepath.Join(etc, filepath.FromSlash(name)), data); err != nil {
			return err
		}
	}
	v := func(p string) string { return filepath.Join(a.dir, "var", p) }
	h := a.home
	ac := fmt.Sprintf("[directories]\nastetcdir => %s\nastmoddir => %s\nastvarlibdir => %s\nastdbdir => %s\n"+
		"astkeydir => %s\nastdatadir => %s\nastagidir => %s\nastspooldir => %s\nastrundir => %s\n"+
		"astlogdir => %s\nastsbindir => %s\n\n[options]\nverbose = 5\ndebug = 0\ntimestamp = yes\n"+
		"documentation_language = en_US\nhideconnect = no\n",
		etc, h.Mods, v("lib"), v("lib"), v("lib"), h.Data, filepath.Join(h.Data, "agi-bin"), v("spool"),
		v("run"), v("log"), filepath.Join(h.Dir, "sbin"))
	if ctl := v("run/asterisk.ctl"); len(ctl) >= 100 {
		return fmt.Errorf("astreal: control socket path too long: %s", ctl)
	}
	return writeFile(filepath.Join(etc, "asterisk.conf"), []byte(ac))
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// freePorts picks a UDP port for SIP, TCP ports for AMI and HTTP and a small
// RTP range (no test makes calls; the range only keeps Asterisks apart).
func freePorts() (ports, error) {
	var p ports
	for _, dst := range []*int{&p.sip, &p.ami, &p.http} {
		port, err := testport.Free()
		if err != nil {
			return p, err
		}
		*dst = port
	}
	p.rtpStart = 42000 + (p.sip%500)*40
	return p, nil
}

// notOwnedBy returns the first of the ports that pid does not hold a socket
// bound to ("" when it holds all): /proc/net lists each socket's inode, and
// /proc/pid/fd links to the inodes the process holds.
func (p ports) notOwnedBy(pid int) string {
	held := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			held[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	for _, c := range []struct {
		table string
		port  int
	}{{"udp", p.sip}, {"tcp", p.ami}, {"tcp", p.http}} {
		if !held[socketInode(c.table, c.port)] {
			return strconv.Itoa(c.port) + "/" + c.table
		}
	}
	return ""
}

// socketInode returns the inode of the socket bound to 127.0.0.1:port in
// /proc/net/<table> (a listening one for TCP), "" if there is none.
func socketInode(table string, port int) string {
	b, err := os.ReadFile("/proc/net/" + table)
	if err != nil {
		return ""
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[1] != local {
			continue
		}
		if table == "tcp" && f[3] != "0A" { // LISTEN
			continue
		}
		return f[9]
	}
	return ""
}
