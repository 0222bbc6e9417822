package fsemu

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// preRE matches one X-PRE-PROCESS instruction (switch_xml.c preprocess).
var preRE = regexp.MustCompile(`(?i)<X-PRE-PROCESS\s+cmd="([^"]*)"\s+data="([^"]*)"\s*/?>`)

// varRE is a $${name} reference to a preprocessor variable.
var varRE = regexp.MustCompile(`\$\$\{([^}]*)\}`)

// maxIncludeDepth bounds include recursion, as FreeSWITCH's preprocess does (rlevel).
const maxIncludeDepth = 20

// preprocess is FreeSWITCH's line-based configuration preprocessor as far as the
// files sipsilo ships need it: $${var} expansion (unknown variables expand to
// nothing), X-PRE-PROCESS cmd="set" and cmd="include" (a glob relative to the
// including file's directory; every line holding the instruction is consumed
// whole). It works on raw text, so an instruction or $${…} inside an XML comment is
// processed too, as in FreeSWITCH. Included files lose their <?xml …?> declaration
// and their <include> wrapper, which exists only to make them well-formed alone.
//
// Not emulated: the other commands (exec, exec-set, env-set, stun-set, ...) and
// $${…} whose value holds another reference.
func preprocess(path string, vars map[string]string, depth int, out *bytes.Buffer) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%s: includes nested deeper than %d", path, maxIncludeDepth)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := varRE.ReplaceAllStringFunc(sc.Text(), func(m string) string {
			return vars[m[3:len(m)-1]]
		})
		if m := preRE.FindStringSubmatch(line); m != nil {
			if err := preprocessCmd(path, strings.ToLower(m[1]), m[2], vars, depth, out); err != nil {
				return err
			}
			continue
		}
		if depth > 0 {
			line = strings.ReplaceAll(line, "<include>", "")
			line = strings.ReplaceAll(line, "</include>", "")
			if t := strings.TrimSpace(line); strings.HasPrefix(t, "<?xml") && strings.HasSuffix(t, "?>") {
				continue
			}
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return sc.Err()
}

func preprocessCmd(path, cmd, data string, vars map[string]string, depth int, out *bytes.Buffer) error {
	switch cmd {
	case "set":
		name, val, ok := strings.Cut(data, "=")
		if ok {
			vars[strings.TrimSpace(name)] = val
		}
	case "include":
		pattern := data
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(path), pattern)
		}
		files, err := filepath.Glob(pattern)
		if err != nil {
			return fmt.Errorf("%s: include %q: %w", path, data, err)
		}
		sort.Strings(files)
		for _, f := range files {
			if err := preprocess(f, vars, depth+1, out); err != nil {
				return err
			}
		}
	}
	return nil
}
