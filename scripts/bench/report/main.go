// Command report turns Go benchmark output into the Markdown tables of
// BENCHMARKS.md: for every benchmark and unit, the median of its runs in each
// file given, side by side, and the ratio of the last column to the first.
// scripts/bench/all.sh feeds it the before and after runs of one session.
//
//	go run ./scripts/bench/report before=before.txt after=after.txt
//
// With -splice FILE it replaces the text between the lines
// "<!-- bench:all:begin -->" and "<!-- bench:all:end -->" of FILE with its
// standard input instead, leaving the rest of the file (the other sections) as
// it is.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	beginMarker = "<!-- bench:all:begin -->"
	endMarker   = "<!-- bench:all:end -->"
)

// units are the metrics shown, in this order; others are left out.
var units = []string{"p50-ms", "p90-ms", "p99-ms", "req/s", "msgs/commit", "pages/msg", "ns/op", "s/drain", "msgs/s", "B/op", "allocs/op"}

var procSuffix = regexp.MustCompile(`-\d+$`)

func main() {
	splice := flag.String("splice", "", "replace the generated section of this file with standard input")
	flag.Parse()
	if *splice != "" {
		if err := spliceFile(*splice); err != nil {
			fatal(err)
		}
		return
	}
	var names []string
	var runs []map[string][]float64
	var order []string
	seen := map[string]bool{}
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			fatal(fmt.Errorf("%q: want name=file", arg))
		}
		m, keys, err := parse(path)
		if err != nil {
			fatal(err)
		}
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				order = append(order, k)
			}
		}
		names = append(names, name)
		runs = append(runs, m)
	}
	if len(runs) == 0 {
		fatal(fmt.Errorf("no input: name=file ..."))
	}
	fmt.Print("| benchmark | unit |")
	for _, n := range names {
		fmt.Printf(" %s |", n)
	}
	if len(names) > 1 {
		fmt.Printf(" %s / %s |", names[len(names)-1], names[0])
	}
	fmt.Print("\n|---|---|")
	for range names {
		fmt.Print("---:|")
	}
	if len(names) > 1 {
		fmt.Print("---:|")
	}
	fmt.Println()
	for _, k := range order {
		bench, unit, _ := strings.Cut(k, "\x00")
		fmt.Printf("| %s | %s |", bench, unit)
		var first, last float64
		for i, m := range runs {
			v, n := median(m[k])
			if n == 0 {
				fmt.Print(" – |")
				continue
			}
			fmt.Printf(" %s (%d) |", num(v), n)
			if i == 0 {
				first = v
			}
			last = v
		}
		if len(names) > 1 {
			if first != 0 && len(runs[0][k]) > 0 && len(runs[len(runs)-1][k]) > 0 {
				fmt.Printf(" %.2f |", last/first)
			} else {
				fmt.Print(" – |")
			}
		}
		fmt.Println()
	}
	fmt.Println("\nEach cell: the median of the runs, their count in brackets.")
}

// parse reads benchmark lines: name, iterations, then value–unit pairs.
func parse(path string) (map[string][]float64, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	out := map[string][]float64{}
	var keys []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || !strings.HasPrefix(fs[0], "Benchmark") {
			continue
		}
		name := procSuffix.ReplaceAllString(strings.TrimPrefix(fs[0], "Benchmark"), "")
		for i := 2; i+1 < len(fs); i += 2 {
			v, err := strconv.ParseFloat(fs[i], 64)
			if err != nil || !slices.Contains(units, fs[i+1]) {
				continue
			}
			k := name + "\x00" + fs[i+1]
			if _, ok := out[k]; !ok {
				keys = append(keys, k)
			}
			out[k] = append(out[k], v)
		}
	}
	// Within a benchmark, the units in the order of units.
	slices.SortStableFunc(keys, func(a, b string) int {
		na, ua, _ := strings.Cut(a, "\x00")
		nb, ub, _ := strings.Cut(b, "\x00")
		if na != nb {
			return 0
		}
		return slices.Index(units, ua) - slices.Index(units, ub)
	})
	return out, keys, sc.Err()
}

func median(v []float64) (float64, int) {
	if len(v) == 0 {
		return 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], len(s)
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, len(s)
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func spliceFile(path string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	body, err := readAll(os.Stdin)
	if err != nil {
		return err
	}
	i := bytes.Index(old, []byte(beginMarker))
	j := bytes.Index(old, []byte(endMarker))
	var out []byte
	if i < 0 || j < i {
		// No section yet: it goes at the end.
		out = append(bytes.TrimRight(old, "\n"), "\n\n"+beginMarker+"\n"...)
	} else {
		out = append([]byte{}, old[:i+len(beginMarker)]...)
		out = append(out, '\n')
	}
	out = append(out, bytes.TrimRight(body, "\n")...)
	out = append(out, "\n"+endMarker+"\n"...)
	if i >= 0 && j > i {
		if rest := bytes.TrimLeft(old[j+len(endMarker):], "\n"); len(rest) > 0 {
			out = append(append(out, '\n'), rest...)
		}
	}
	return os.WriteFile(path, out, 0o644)
}

func readAll(f *os.File) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}
