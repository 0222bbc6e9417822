package docs

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// root is the repository's top directory, seen from this package.
const root = ".."

// TestReadmeLayoutMatchesTree checks the README's Layout table against the
// tree: every top-level entry of the repository has a row, and every path a
// row names exists.
func TestReadmeLayoutMatchesTree(t *testing.T) {
	rows := layoutRows(t)
	if len(rows) == 0 {
		t.Fatal("README.md: no rows found in the Layout table")
	}
	covered := map[string]bool{}
	for _, p := range rows {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); err != nil {
			t.Errorf("README.md Layout names %q, which does not exist", p)
		}
		covered[strings.SplitN(p, "/", 2)[0]] = true
	}
	for _, e := range topLevelEntries(t) {
		if !covered[e] {
			t.Errorf("top-level %q has no row in README.md's Layout table", e)
		}
	}
}

// layoutRows returns every backquoted path in the first column of the table
// under "## Layout" in README.md, without a trailing slash.
func layoutRows(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code := regexp.MustCompile("`([^`]+)`")
	var paths []string
	in, header := false, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimSpace(line[3:]) == "Layout"
			continue
		case !in || !strings.HasPrefix(line, "|"):
			continue
		}
		if header < 2 { // the column names and the |---| line
			header++
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			t.Fatalf("README.md Layout: malformed row %q", line)
		}
		ms := code.FindAllStringSubmatch(cells[1], -1)
		if len(ms) == 0 {
			t.Errorf("README.md Layout: row %q names no `path`", line)
		}
		for _, m := range ms {
			paths = append(paths, strings.TrimSuffix(m[1], "/"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return paths
}

// topLevelEntries is the first path component of every file git tracks or
// would track (untracked but not ignored), plus every top-level directory git
// does not ignore.
func topLevelEntries(t *testing.T) []string {
	t.Helper()
	set := map[string]bool{}
	for _, f := range repoFiles(t) {
		set[strings.SplitN(f, "/", 2)[0]] = true
	}
	des, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if !de.IsDir() || de.Name() == ".git" || ignored(de.Name()) {
			continue
		}
		set[de.Name()] = true
	}
	out := make([]string, 0, len(set))
	for e := range set {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// repoFiles lists the files git tracks plus the untracked ones it does not
// ignore, relative to the repository's top, with forward slashes.
func repoFiles(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files (this test reads the repository through git): %v", err)
	}
	var files []string
	for _, f := range bytes.Split(out, []byte{0}) {
		if len(f) == 0 {
			continue
		}
		// Deleted in the work tree but not yet in the index: not part of the tree.
		if _, err := os.Lstat(filepath.Join(root, string(f))); err != nil {
			continue
		}
		files = append(files, string(f))
	}
	if len(files) == 0 {
		t.Fatal("git ls-files listed no files")
	}
	return files
}

func ignored(name string) bool {
	cmd := exec.Command("git", "check-ignore", "-q", name+"/")
	cmd.Dir = root
	return cmd.Run() == nil
}

// docFile reports whether path is a file whose text may cite documents: the
// kinds the project writes prose or comments in, and its scripts.
func docFile(path string) bool {
	switch filepath.Ext(path) {
	case ".go", ".sh", ".md", ".xml", ".toml", ".service":
		return true
	}
	return strings.HasPrefix(path, "scripts/") || strings.HasPrefix(path, ".ci/")
}

// TestNoCitationsOutsideTheRepository fails on any reference to design
// documents a clone does not have; the project's own are in docs/.
func TestNoCitationsOutsideTheRepository(t *testing.T) {
	// Spelled in pieces so that this file does not match itself.
	outside := []string{".." + "/shared", "DESIGN" + ".md", "LIBRAR" + "IES.md", "FAC" + "TS.md"}
	n := 0
	for _, f := range repoFiles(t) {
		if !docFile(f) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		n++
		for i, line := range strings.Split(string(text), "\n") {
			for _, s := range outside {
				if strings.Contains(line, s) {
					t.Errorf("%s:%d cites %s, which is not in the repository: cite docs/architecture.md or docs/decisions.md", f, i+1, s)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no files checked")
	}
}

// TestCitedSectionsExist checks every citation of a numbered decision and of
// an architecture heading in the repository against the headings of those two
// files, so a renumbered or renamed section cannot leave a citation
// pointing nowhere.
func TestCitedSectionsExist(t *testing.T) {
	decisions := headings(t, "decisions.md")
	architecture := headings(t, "architecture.md")
	numbered := map[string]bool{}
	for h := range decisions {
		if m := regexp.MustCompile(`^(\d+)\. `).FindStringSubmatch(h); m != nil {
			numbered[m[1]] = true
		}
	}
	for i := 1; i <= 15; i++ { // the numbers the code has always cited
		if !numbered[strconv.Itoa(i)] {
			t.Errorf("decisions.md has no section %d", i)
		}
	}
	// Comment markers and line breaks may sit between the file and the section.
	gap := `[\s/#*>` + "`" + `]*`
	decRe := regexp.MustCompile(`docs/decisions\.md` + gap + `§(\d+)((?:,\s*§\d+)*)`)
	more := regexp.MustCompile(`§(\d+)`)
	archRe := regexp.MustCompile(`docs/architecture\.md` + gap + `,` + gap + `"([^"]+)"`)
	cites := 0
	for _, f := range repoFiles(t) {
		if !docFile(f) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range decRe.FindAllStringSubmatch(text, -1) {
			for _, n := range append([]string{m[1]}, subs(more, m[2])...) {
				cites++
				if !numbered[n] {
					t.Errorf("%s cites docs/decisions.md §%s, which has no such section", f, n)
				}
			}
		}
		for _, m := range archRe.FindAllStringSubmatch(text, -1) {
			cites++
			if !architecture[m[1]] {
				t.Errorf("%s cites docs/architecture.md, %q, which has no such heading", f, m[1])
			}
		}
	}
	if cites == 0 {
		t.Fatal("found no citations of docs/ at all")
	}
}

func subs(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// headings returns the text of every "## " heading of a file in this folder.
func headings(t *testing.T, name string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	hs := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			hs[strings.TrimSpace(h)] = true
		}
	}
	return hs
}

// TestCorePackagesImportNoSwitch checks the boundary docs/architecture.md,
// "Layout" draws: delivery, reachability, storage and the mirror know no
// switch's client, so FreeSWITCH and Asterisk are two adapters of one product.
func TestCorePackagesImportNoSwitch(t *testing.T) {
	banned := []string{"/esl", "/internal/freeswitch", "/internal/asterisk", "/internal/fsemu"}
	for _, dir := range []string{"relay", "presence", "kv", "mirror"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				line = strings.TrimSpace(line)
				for _, p := range banned {
					if strings.Contains(line, `"github.com/sipsilo/sipsilo`+p+`"`) {
						t.Errorf("%s imports %s", f, strings.Trim(line, `"`))
					}
				}
			}
		}
	}
}
