package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is the build's version: main sets it from its own variable, stamped
// with -ldflags "-X main.version=v1.2.3"; builds without it say "dev" and rely on
// the VCS stamp below.
var Version = "dev"

// buildInfo is what `sipsilo version` prints: enough to tell two binaries apart
// and to know which library versions a bug report is about.
type buildInfo struct {
	Version  string
	Revision string // VCS commit, if the binary was built from a checkout
	Time     string // commit time
	Modified bool   // built from a checkout with uncommitted changes
	Go       string
	Platform string
	Deps     []string // the libraries sipsilo's behaviour depends on, path@version
}

// keyDeps are the modules whose versions matter when reading a report.
var keyDeps = []string{
	"go.etcd.io/bbolt",
	"github.com/emiago/sipgo",
	"github.com/labstack/echo/v4",
	"github.com/go-sql-driver/mysql",
	"github.com/prometheus/client_golang",
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: Version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version // go install github.com/sipsilo/sipsilo@v1.2.3
	}
	for _, d := range bi.Deps {
		for _, k := range keyDeps {
			if d.Path == k {
				b.Deps = append(b.Deps, d.Path+"@"+d.Version)
			}
		}
	}
	return b
}

// versionString is the one-line form used in logs.
func versionString() string {
	b := readBuildInfo()
	v := b.Version
	if len(b.Revision) >= 12 {
		v += " (" + b.Revision[:12]
		if b.Modified {
			v += ", modified"
		}
		v += ")"
	}
	return v
}

func printVersion(w io.Writer) {
	b := readBuildInfo()
	fmt.Fprintln(w, "sipsilo", b.Version)
	if b.Revision != "" {
		mod := ""
		if b.Modified {
			mod = " (modified)"
		}
		fmt.Fprintf(w, "  commit   %s%s\n", b.Revision, mod)
	}
	if b.Time != "" {
		fmt.Fprintf(w, "  date     %s\n", b.Time)
	}
	fmt.Fprintf(w, "  go       %s %s\n", b.Go, b.Platform)
	if len(b.Deps) > 0 {
		fmt.Fprintf(w, "  modules  %s\n", strings.Join(b.Deps, " "))
	}
}
