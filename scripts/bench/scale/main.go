// Command scale measures sipsilo's store at a large queue, as a new user would try
// it (docs/decisions.md §35): N messages posted through the chatplan endpoint of a
// real `sipsilo serve` for R recipients by 64 kept-alive clients, FreeSWITCH's
// event socket unreachable (nothing is delivered); then a restart on that file.
// It reports RSS (anonymous and file-backed, from /proc), the Go heap (from
// /metrics), bytes on disk per queued message, the time from exec to /healthz, and
// the intake latency of the same load on the empty store and with N queued.
//
// Each -bin is measured in turn, in the order given, on a file of its own, so
// that before/after figures come from one run (scripts/bench/run.sh). Only
// 127.0.0.1 is ever contacted.
//
//	go run ./scripts/bench/scale -bin before=/tmp/old -bin after=/tmp/new -n 1000000
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sipsilo/sipsilo/internal/fsemu"
)

type binFlag []string

func (b *binFlag) String() string     { return strings.Join(*b, ",") }
func (b *binFlag) Set(s string) error { *b = append(*b, s); return nil }

var (
	n          = flag.Int("n", 1_000_000, "messages to queue")
	recipients = flag.Int("recipients", 10_000, "distinct recipients")
	clients    = flag.Int("clients", 64, "kept-alive HTTP clients")
	probe      = flag.Int("probe", 20_000, "messages of the latency probes (empty store, full store, after restart)")
	watch      = flag.Duration("watch", 20*time.Second, "how long RSS and heap are watched after the restart")
	dir        = flag.String("dir", "", "directory for the database files (default: a new temp dir, removed after)")
	keep       = flag.Bool("keep", false, "keep the database files (in -dir)")
)

func main() {
	var bins binFlag
	flag.Var(&bins, "bin", "name=path of a sipsilo binary to measure (repeatable)")
	flag.Parse()
	if len(bins) == 0 {
		fmt.Fprintln(os.Stderr, "scale: at least one -bin name=path")
		os.Exit(2)
	}
	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "sipsilo-scale")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(d)
		work = d
	}
	var results []*result
	for _, b := range bins {
		name, path, ok := strings.Cut(b, "=")
		if !ok {
			fatal(fmt.Errorf("-bin %q: want name=path", b))
		}
		r, err := measure(name, path, filepath.Join(work, name+".db"))
		if err != nil {
			fatal(fmt.Errorf("%s: %w", name, err))
		}
		results = append(results, r)
		if !*keep {
			os.Remove(filepath.Join(work, name+".db"))
		}
	}
	report(results)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

type mem struct {
	anon, file int64 // RssAnon, RssFile + RssShmem, bytes
	heap       int64 // go_memstats_heap_inuse_bytes
}

type latency struct {
	rate     float64
	p50, p99 time.Duration
}

type result struct {
	name                      string
	fill                      latency // the whole fill, N messages
	empty, full, restarted    latency // the probes
	fillMem                   mem     // at the end of the fill (steady)
	peakFill                  mem     // peak during the fill
	fileBytes                 int64
	queued                    int
	startup                   time.Duration // exec → /healthz 200
	startupCPU                time.Duration // the process's CPU time by then
	recovery, recoveryPeak    mem           // end of the watch, peak during it
	recoveryIdle              mem           // before the post-restart probe
	stuckBodies, failed, errs int64
}

func measure(name, bin, db string) (*result, error) {
	r := &result{name: name}
	refused0 := notStored.Load()
	defer func() { r.failed = notStored.Load() - refused0 }()
	fmt.Fprintf(os.Stderr, "== %s: %d messages for %d recipients\n", name, *n, *recipients)
	d, err := start(bin, db)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	var seq atomic.Uint64
	r.empty = load(d.addr, *probe, &seq, nil)
	fmt.Fprintf(os.Stderr, "   empty store: %.0f/s p50 %v p99 %v\n", r.empty.rate, r.empty.p50, r.empty.p99)
	peak := &peakMem{pid: d.cmd.Process.Pid, addr: d.addr}
	rest := *n - 2*(*probe)
	r.fill = load(d.addr, rest, &seq, peak)
	r.full = load(d.addr, *probe, &seq, nil)
	fmt.Fprintf(os.Stderr, "   fill %.0f/s; full store: %.0f/s p50 %v p99 %v\n", r.fill.rate, r.full.rate, r.full.p50, r.full.p99)
	r.peakFill = peak.max
	time.Sleep(5 * time.Second) // the bodies' grace passes (2 s), the writer settles
	r.fillMem = sample(d.cmd.Process.Pid, d.addr)
	r.queued = queued(d.addr)
	if err := d.stop(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(db); err == nil {
		r.fileBytes = fi.Size()
	}

	t0 := time.Now()
	d, err = start(bin, db)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	r.startup = d.ready.Sub(t0)
	r.startupCPU = cpuTime(d.cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "   restart: /healthz after %v\n", r.startup)
	end := time.Now().Add(*watch)
	for time.Now().Before(end) {
		m := sample(d.cmd.Process.Pid, d.addr)
		r.recoveryPeak = maxMem(r.recoveryPeak, m)
		r.recovery = m
		time.Sleep(500 * time.Millisecond)
	}
	r.recoveryIdle = r.recovery
	r.restarted = load(d.addr, *probe, &seq, nil)

	return r, d.stop()
}

type daemon struct {
	cmd   *exec.Cmd
	addr  string
	ready time.Time
	done  chan error
}

func start(bin, db string) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "serve", "--db", db, "--http", addr,
		"--esl", "127.0.0.1:1", // unreachable: nothing is delivered
		"--ping", "off", "--log-level", "warn", "--quota", "0")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, addr: addr, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				d.ready = time.Now()
				return d, nil
			}
		}
		select {
		case err := <-d.done:
			d.cmd = nil
			return nil, fmt.Errorf("sipsilo exited before /healthz: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	d.stop()
	return nil, errors.New("no /healthz within 5 minutes")
}

// stop ends the daemon it started (by its pid), gracefully, then by force.
func (d *daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		return err
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		return errors.New("no exit within 60 s of SIGTERM")
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// load posts count messages with the kept-alive clients and returns the rate and
// the latency percentiles; peak (if set) is sampled every 2 s meanwhile.
func load(addr string, count int, seq *atomic.Uint64, peak *peakMem) latency {
	x := &fsemu.XMLCurl{URL: "http://" + addr + "/fs/chatplan?text=${url_encode(_${_body}_)}&md5=${md5(_${_body}_)}"}
	var next atomic.Int64
	lats := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	stopPeak := make(chan struct{})
	peakDone := make(chan struct{})
	go func() {
		defer close(peakDone)
		if peak == nil {
			return
		}
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopPeak:
				return
			case <-t.C:
				peak.max = maxMem(peak.max, sample(peak.pid, peak.addr))
			}
		}
	}()
	t0 := time.Now()
	for c := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for next.Add(1) <= int64(count) {
				s := seq.Add(1)
				ev := fsemu.NewMessageEvent(fsemu.MessageParams{Sequence: s, FromTag: "bench",
					ToUser: strconv.Itoa(1000 + int(s%uint64(*recipients))),
					Body:   "hello, this is a typical short message ü"})
				req, err := x.BuildRequest(ev)
				if err != nil {
					fatal(err)
				}
				// The kept-alive client sends HTTP/1.1 without Connection: close.
				req = bytes.Replace(req, []byte("\r\nConnection: close"), nil, 1)
				for try := 0; ; try++ { // a message left to FreeSWITCH is sent again
					if conn == nil {
						conn, err = net.Dial("tcp", addr)
						if err != nil {
							fatal(err)
						}
						br = bufio.NewReader(conn)
					}
					start := time.Now()
					err = exchange(conn, br, req)
					if err == nil {
						lats[c] = append(lats[c], time.Since(start))
						break
					}
					conn.Close()
					conn = nil
					if try > 10 {
						fatal(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	close(stopPeak)
	<-peakDone
	if peak != nil { // a fill shorter than the sampling period still has a sample
		peak.max = maxMem(peak.max, sample(peak.pid, peak.addr))
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	return latency{rate: float64(len(all)) / took.Seconds(), p50: q(0.5), p99: q(0.99)}
}

// notStored counts the answers that left a message to FreeSWITCH (answer
// deadline passed, store error): the client sends that message again.
var notStored atomic.Int64

func exchange(conn net.Conn, br *bufio.Reader, req []byte) error {
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(req); err != nil {
		return err
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode == http.StatusOK && !bytes.Contains(body, []byte("sipsilo_id")) {
		notStored.Add(1)
	}
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("sipsilo_id")) {
		return fmt.Errorf("not stored: status %d: %.300s", res.StatusCode, body)
	}
	if res.Close {
		return errors.New("server closed the connection")
	}
	return nil
}

// cpuTime is the user + system CPU time of process pid (/proc/pid/stat).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The fields after the command (which may hold spaces) start after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / 100 // USER_HZ is 100 on Linux
}

type peakMem struct {
	pid  int
	addr string
	max  mem
}

func maxMem(a, b mem) mem {
	return mem{anon: max(a.anon, b.anon), file: max(a.file, b.file), heap: max(a.heap, b.heap)}
}

func sample(pid int, addr string) mem {
	var m mem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			switch k {
			case "RssAnon":
				m.anon = kb << 10
			case "RssFile", "RssShmem":
				m.file += kb << 10
			}
		}
	}
	m.heap = gauge(addr, "go_memstats_heap_inuse_bytes")
	return m
}

// gauge reads one unlabelled sample of /metrics (-1 when absent).
func gauge(addr, name string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return int64(f)
			}
		}
	}
	return -1
}

func queued(addr string) int { return int(gauge(addr, "sipsilo_queue_messages")) }

func mb(b int64) string {
	if b < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func report(rs []*result) {
	w := os.Stdout
	row := func(label string, f func(r *result) string) {
		fmt.Fprintf(w, "| %s |", label)
		for _, r := range rs {
			fmt.Fprintf(w, " %s |", f(r))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d messages for %d recipients, %d kept-alive clients, event socket unreachable; latency probes of %d messages\n\n",
		*n, *recipients, *clients, *probe)
	fmt.Fprint(w, "| |")
	for _, r := range rs {
		fmt.Fprintf(w, " %s |", r.name)
	}
	fmt.Fprint(w, "\n|---|")
	for range rs {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	lat := func(l latency) string { return fmt.Sprintf("%.0f/s, %s / %s ms", l.rate, ms(l.p50), ms(l.p99)) }
	row("intake, empty store: rate, p50 / p99", func(r *result) string { return lat(r.empty) })
	row("intake during the fill", func(r *result) string { return lat(r.fill) })
	row("intake with the store full", func(r *result) string { return lat(r.full) })
	row("full / empty p50", func(r *result) string { return fmt.Sprintf("%.2f", float64(r.full.p50)/float64(r.empty.p50)) })
	row("queued (sipsilo_queue_messages)", func(r *result) string { return strconv.Itoa(r.queued) })
	row("file MB; bytes per queued message", func(r *result) string {
		per := "–"
		if r.queued > 0 {
			per = strconv.FormatInt(r.fileBytes/int64(r.queued), 10)
		}
		return mb(r.fileBytes) + "; " + per
	})
	m := func(x mem) string { return fmt.Sprintf("%s + %s (heap %s)", mb(x.anon), mb(x.file), mb(x.heap)) }
	row("RSS anon + file MB, peak of the fill", func(r *result) string { return m(r.peakFill) })
	row("RSS anon + file MB, full and idle", func(r *result) string { return m(r.fillMem) })
	row("restart: exec → /healthz ms (CPU ms by then)", func(r *result) string {
		return ms(r.startup) + " (" + ms(r.startupCPU) + ")"
	})
	row(fmt.Sprintf("RSS anon + file MB, peak of %v after restart", *watch), func(r *result) string { return m(r.recoveryPeak) })
	row(fmt.Sprintf("RSS anon + file MB, %v after restart", *watch), func(r *result) string { return m(r.recovery) })
	row("intake after the restart", func(r *result) string { return lat(r.restarted) })
	row("answers that left the message to FreeSWITCH (sent again)", func(r *result) string { return strconv.FormatInt(r.failed, 10) })
}
