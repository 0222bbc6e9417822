// Package fssipp measures what sipsilo costs a real FreeSWITCH: sipp sends
// MESSAGEs at fixed rates through one FreeSWITCH 1.10.12 whose chatplan
// binding points, alternately in the same run, at a real `sipsilo serve`
// (logged in to the event socket) and at a do-nothing backend of the same
// HTTP shape (an instant, constant chatplan answer, no event socket). See
// scripts/bench/fs-sipp.sh and BENCHMARKS.md, "FreeSWITCH with sipsilo".
//
// Everything runs on 127.0.0.1: FreeSWITCH through internal/fsreal on free
// ports, the recipient phone through internal/sipptest, the sender as sipp.
package fssipp

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sipsilo/sipsilo/dialplan"
	conf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
	"github.com/sipsilo/sipsilo/internal/fsreal"
	"github.com/sipsilo/sipsilo/internal/sipptest"
)

//go:embed message.xml
var messageXML string

// Settings from the environment (scripts/bench/fs-sipp.sh passes them on).
func settings(b *testing.B) (rates []int, secs int, cpuRate int) {
	b.Helper()
	rs := envOr("FS_SIPP_RATES", "300,500,700,900")
	for _, f := range strings.Split(rs, ",") {
		if rs == "-" { // no sweep: only the CPU runs
			break
		}
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 || r > 5000 {
			b.Fatalf("FS_SIPP_RATES: %q", rs)
		}
		rates = append(rates, r)
	}
	secs, err := strconv.Atoi(envOr("FS_SIPP_SECS", "6"))
	if err != nil || secs <= 0 || secs > 120 {
		b.Fatalf("FS_SIPP_SECS: %q", os.Getenv("FS_SIPP_SECS"))
	}
	cpuRate, err = strconv.Atoi(envOr("FS_SIPP_CPU_RATE", "200"))
	if err != nil || cpuRate < 0 || cpuRate > 5000 {
		b.Fatalf("FS_SIPP_CPU_RATE: %q", os.Getenv("FS_SIPP_CPU_RATE"))
	}
	return rates, secs, cpuRate
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// result is one sipp run against one backend.
type result struct {
	backend     string
	rate, sent  int
	ok, failed  int
	answered500 int // of failed: FreeSWITCH answered the authenticated MESSAGE 500
	retrans     int
	answered    int           // chatplan lookups the backend answered
	lag         time.Duration // from sipp's end until every lookup was answered; -1: not within maxDrain
	fsCPU       time.Duration // FreeSWITCH's utime+stime over the run and its drain
	sippSecs    float64
	intakeMean  time.Duration // sipsilo's mean answer time (its /metrics), 0 for null
	// commitsPerMsg: sipsilo's store commits over the run per MESSAGE (intake,
	// the body's ESL copy, delivery attempt and result...)
	commitsPerMsg float64
}

// clean: every MESSAGE answered 202 at its first sending, the backend's
// backlog gone within drainWait.
func (r result) clean() bool {
	return r.failed == 0 && r.retrans == 0 && r.lag >= 0 && r.lag <= drainWait && r.ok == r.sent
}

// clean500 is clean but for FreeSWITCH's own 500s: 1.10.12 answers an
// occasional authenticated MESSAGE 500 at any rate, whatever the backend (it
// answers 202 before the chatplan runs), so clean alone may find no rate.
func (r result) clean500() bool {
	return r.failed == r.answered500 && r.retrans == 0 && r.lag >= 0 && r.lag <= drainWait && r.ok+r.answered500 == r.sent
}

func (r result) String() string {
	lag := "not drained"
	if r.lag >= 0 {
		lag = r.lag.Round(time.Millisecond).String()
	}
	per := 0.0
	if r.answered > 0 {
		per = float64(r.fsCPU.Microseconds()) / float64(r.answered)
	}
	return fmt.Sprintf("%-8s %4d/s: sent %5d ok %5d failed %3d (500: %3d) retrans %4d answered %5d backlog gone after %-11s FS CPU %5.0f µs/MESSAGE clean %-5v clean but 500s %-5v sipsilo's mean answer %v, %.1f commits/MESSAGE",
		r.backend, r.rate, r.sent, r.ok, r.failed, r.answered500, r.retrans, r.answered, lag, per, r.clean(), r.clean500(),
		r.intakeMean.Round(time.Microsecond), r.commitsPerMsg)
}

// drainWait bounds how long a run waits, after sipp's last 202, for the
// backend to have answered every lookup: FreeSWITCH queues MESSAGEs for its
// chat threads (5000 per thread) and answers 202 before its chatplan runs,
// so a backend that cannot keep up shows as a backlog, not as sipp failures.
const drainWait = 1 * time.Second

// maxDrain bounds the wait for a backlog that drainWait already failed.
const maxDrain = 15 * time.Second

// BenchmarkFSSipp runs the rates of FS_SIPP_RATES, FS_SIPP_SECS seconds each,
// against both backends (alternating which goes first), and reports for each
// backend the highest of those rates at which its run was clean; then
// FS_SIPP_CPU_ROUNDS rounds at FS_SIPP_CPU_RATE of sipsilo, the do-nothing
// backend, the do-nothing backend with sipsilo on the event socket (and the
// slow one with FS_SIPP_SLOW) for FreeSWITCH's CPU per MESSAGE, medians. Half
// the MESSAGEs go to 1001, registered at a sipp phone that answers 200, half
// to 1002, not registered. Run with -benchtime 1x.
func BenchmarkFSSipp(b *testing.B) {
	rates, secs, cpuRate := settings(b)
	loglevel := os.Getenv("FS_SIPP_FS_LOGLEVEL") // e.g. notice; default: the conf's (debug, as vanilla)
	if _, err := exec.LookPath("sipp"); err != nil {
		b.Skip("sipp not installed (Debian package sip-tester)")
	}
	bin := buildSipsilo(b)
	dir := b.TempDir()
	sipsiloHTTP, nullHTTP := freePort(b), freePort(b)
	fs := fsreal.Start(b, fsreal.Options{Sipsilo: &conf.Options{HTTPAddr: sipsiloHTTP}})
	if loglevel != "" {
		if _, err := fs.API("fsctl loglevel " + loglevel); err != nil {
			b.Fatal(err)
		}
	}
	phone := sipptest.Start(b, sipptest.Options{})
	ua, err := fsemu.NewUA(fsemu.UAOptions{User: "1001", Password: fsreal.Password, Switch: fs.SIPAddr(),
		Contact: phone.Contact("1001")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ua.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = ua.Register(ctx, time.Hour)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	null := startNull(b, nullHTTP, 0)
	// slow: the do-nothing backend answering after FS_SIPP_SLOW (e.g. 10ms),
	// CPU-free: whether a slow answer alone costs FreeSWITCH CPU.
	slowDelay, err := time.ParseDuration(envOr("FS_SIPP_SLOW", "0s"))
	if err != nil || slowDelay < 0 || slowDelay > time.Second {
		b.Fatalf("FS_SIPP_SLOW: %q", os.Getenv("FS_SIPP_SLOW"))
	}
	slowHTTP := freePort(b)
	slow := startNull(b, slowHTTP, slowDelay)
	scenario := filepath.Join(dir, "message.xml")
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(scenario, []byte(messageXML), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(users, []byte("SEQUENTIAL\n1001;\n1002;\n"), 0o644); err != nil {
		b.Fatal(err)
	}

	run := func(backend string, rate, n int) result {
		var s *sipsilo
		var answered func() int
		switch backend {
		case "sipsilo":
			s = startSipsilo(b, bin, dir, sipsiloHTTP, fs)
			fs.PointChatplan(b, conf.Options{HTTPAddr: sipsiloHTTP})
			answered = s.answered
		case "slow":
			fs.PointChatplan(b, conf.Options{HTTPAddr: slowHTTP})
			base := slow.Load()
			answered = func() int { return int(slow.Load() - base) }
		case "null+esl":
			// sipsilo logged in to the event socket, the chatplan answered by the
			// do-nothing backend: what the event stream alone costs FreeSWITCH.
			s = startSipsilo(b, bin, dir, sipsiloHTTP, fs)
			fallthrough
		default:
			fs.PointChatplan(b, conf.Options{HTTPAddr: nullHTTP})
			base := null.Load()
			answered = func() int { return int(null.Load() - base) }
		}
		time.Sleep(300 * time.Millisecond) // let the reload and the ESL login settle
		base := answered()
		commits0 := 0.0
		if s != nil {
			commits0 = s.metric("sipsilo_store_commits_total")
		}
		cpu0 := procCPU(b, fs.PID())
		res := runSipp(b, dir, scenario, users, fs.SIPAddr(), rate, n)
		res.backend = backend
		end := time.Now()
		res.lag = -1
		for time.Since(end) < maxDrain {
			if answered()-base >= res.ok {
				res.lag = time.Since(end)
				break
			}
			// Not faster: each look at sipsilo's /metrics costs it CPU.
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the events of the last MESSAGEs
		res.fsCPU = procCPU(b, fs.PID()) - cpu0
		res.answered = answered() - base
		if s != nil {
			if res.answered > 0 {
				res.commitsPerMsg = (s.metric("sipsilo_store_commits_total") - commits0) / float64(res.answered)
			}
			if n := s.metric("sipsilo_intake_seconds_count"); n > 0 {
				res.intakeMean = time.Duration(s.metric("sipsilo_intake_seconds_sum") / n * float64(time.Second))
			}
			s.stop(b)
		}
		b.Log(res)
		return res
	}

	// FreeSWITCH's own CPU while idle (its timers, pingers), for scale.
	idle0 := procCPU(b, fs.PID())
	time.Sleep(3 * time.Second)
	idle := (procCPU(b, fs.PID()) - idle0) / 3
	b.ResetTimer()
	var all []result
	best, best500 := map[string]int{}, map[string]int{}
	for i, rate := range rates {
		order := []string{"null", "sipsilo"}
		if i%2 == 1 {
			order = []string{"sipsilo", "null"}
		}
		for _, be := range order {
			r := run(be, rate, rate*secs)
			all = append(all, r)
			if r.clean() && rate > best[be] {
				best[be] = rate
			}
			if r.clean500() && rate > best500[be] {
				best500[be] = rate
			}
		}
	}
	cpu := map[string][]float64{}
	rounds, err := strconv.Atoi(envOr("FS_SIPP_CPU_ROUNDS", "2"))
	if err != nil || rounds < 1 || rounds > 20 {
		b.Fatalf("FS_SIPP_CPU_ROUNDS: %q", os.Getenv("FS_SIPP_CPU_ROUNDS"))
	}
	for i := 0; cpuRate > 0 && i < rounds; i++ {
		backends := []string{"sipsilo", "null", "null+esl"}
		if slowDelay > 0 {
			backends = append(backends, "slow")
		}
		for _, be := range backends {
			r := run(be, cpuRate, cpuRate*secs)
			all = append(all, r)
			if r.answered > 0 {
				per := float64(r.fsCPU.Microseconds()) / float64(r.answered)
				cpu[be] = append(cpu[be], per)
			}
		}
	}
	b.StopTimer()
	logErrors(b, fs.LogPath())
	sort.SliceStable(all, func(i, j int) bool { return all[i].rate < all[j].rate })
	for _, r := range all {
		fmt.Println(r)
	}
	fmt.Printf("FreeSWITCH idle: %v CPU per second\n", idle)
	fmt.Printf("highest clean rate: null %d/s, sipsilo %d/s", best["null"], best["sipsilo"])
	if best["null"] > 0 {
		fmt.Printf(", ratio %.2f", float64(best["sipsilo"])/float64(best["null"]))
		b.ReportMetric(float64(best["sipsilo"])/float64(best["null"]), "ratio")
	}
	fmt.Printf("\nhighest clean rate but FreeSWITCH's 500s: null %d/s, sipsilo %d/s", best500["null"], best500["sipsilo"])
	if best500["null"] > 0 {
		fmt.Printf(", ratio %.2f", float64(best500["sipsilo"])/float64(best500["null"]))
		b.ReportMetric(float64(best500["sipsilo"])/float64(best500["null"]), "ratio-but-500s")
	}
	fmt.Println()
	if cpuRate > 0 {
		fmt.Printf("FreeSWITCH CPU per MESSAGE at %d/s (median of %d): null %.0f µs %.0f, null+esl %.0f µs %.0f, sipsilo %.0f µs %.0f\n",
			cpuRate, rounds, median(cpu["null"]), cpu["null"], median(cpu["null+esl"]), cpu["null+esl"],
			median(cpu["sipsilo"]), cpu["sipsilo"])
		if slowDelay > 0 {
			fmt.Printf("FreeSWITCH CPU per MESSAGE with the do-nothing backend answering after %v: %.0f µs %.0f\n",
				slowDelay, median(cpu["slow"]), cpu["slow"])
		}
		b.ReportMetric(median(cpu["null+esl"]), "fs-µs/msg-null+esl")
		b.ReportMetric(median(cpu["null"]), "fs-µs/msg-null")
		b.ReportMetric(median(cpu["sipsilo"]), "fs-µs/msg-sipsilo")
	}
	b.ReportMetric(float64(best["null"]), "null-msg/s")
	b.ReportMetric(float64(best["sipsilo"]), "sipsilo-msg/s")
}

// buildSipsilo builds the module's binary (or takes FS_SIPP_BIN).
func buildSipsilo(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("FS_SIPP_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "sipsilo")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/sipsilo/sipsilo")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startNull serves the do-nothing backend: every request's body is read and
// answered with one constant chatplan of sipsilo's shape (hand the message
// over, deliver nothing), after delay. It counts the requests.
func startNull(b *testing.B, addr string, delay time.Duration) *atomic.Int64 {
	b.Helper()
	doc, err := dialplan.Chatplan("public", "0123456789abcdef")
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	l, err := net.Listen("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		if delay > 0 {
			time.Sleep(delay)
		}
		w.Header().Set("Content-Type", "text/xml")
		w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
		_, _ = w.Write(doc)
		n.Add(1)
	})}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close() })
	return &n
}

// sipsilo is a `sipsilo serve` child on a fresh file, logged in to fs.
type sipsilo struct {
	cmd  *exec.Cmd
	http string
	done chan struct{}
	log  *os.File
}

func startSipsilo(b *testing.B, bin, dir, httpAddr string, fs *fsreal.FS) *sipsilo {
	b.Helper()
	d, err := os.MkdirTemp(dir, "sipsilo-")
	if err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(d, "sipsilo.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--http", httpAddr, "--db", filepath.Join(d, "sipsilo.db"),
		"--esl", fs.ESLAddr(), "--esl-password", fs.ESLPassword())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &sipsilo{cmd: cmd, http: httpAddr, done: make(chan struct{}), log: logf}
	go func() { _ = cmd.Wait(); close(s.done) }()
	b.Cleanup(func() { s.kill() })
	deadline := time.Now().Add(15 * time.Second)
	for !s.eslUp() {
		if time.Now().After(deadline) {
			b.Fatalf("sipsilo not ready with its event socket within 15 s; log %s", logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *sipsilo) kill() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	_ = s.log.Close()
}

func (s *sipsilo) stop(b *testing.B) {
	b.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		b.Errorf("sipsilo did not stop within 20 s of SIGTERM")
		s.kill()
	}
}

// metric sums the samples of /metrics whose line starts with prefix; -1 when
// /metrics cannot be read.
func (s *sipsilo) metric(prefix string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + s.http + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				sum += v
			}
		}
	}
	if sc.Err() != nil {
		return -1
	}
	return sum
}

func (s *sipsilo) eslUp() bool { return s.metric("sipsilo_esl_up ") == 1 }

// answered counts the chatplan lookups sipsilo answered (every answer).
func (s *sipsilo) answered() int { return int(s.metric("sipsilo_intake_seconds_count")) }

// procCPU is pid's utime+stime.
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name (in parentheses, may hold spaces).
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// f[0] is field 3 (state); utime is field 14, stime 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

// runSipp sends n MESSAGEs at rate per second and reads sipp's final
// counters.
func runSipp(b *testing.B, dir, scenario, users, target string, rate, n int) result {
	b.Helper()
	stat := filepath.Join(dir, fmt.Sprintf("stat-%d-%d.csv", rate, time.Now().UnixNano()))
	port, ctl := freePort(b), freePort(b)
	_, p, _ := net.SplitHostPort(port)
	_, cp, _ := net.SplitHostPort(ctl)
	args := []string{"-sf", scenario, "-inf", users, "-i", "127.0.0.1", "-p", p, "-t", "u1",
		"-mi", "127.0.0.1", "-ci", "127.0.0.1", "-cp", cp, "-nostdin",
		"-r", strconv.Itoa(rate), "-rp", "1000", "-m", strconv.Itoa(n), "-l", "100000",
		"-recv_timeout", "10000", "-timeout", strconv.Itoa(n/rate+60) + "s",
		"-trace_stat", "-stf", stat, "-fd", "1", "-trace_err", "-error_file", stat + ".err", target}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n/rate+90)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	res := result{rate: rate, sent: n, sippSecs: time.Since(start).Seconds()}
	if err != nil {
		if data, err := os.ReadFile(stat + ".err"); err == nil {
			res.answered500 = strings.Count(string(data), "received 'SIP/2.0 500 ")
			if len(data) > 2000 {
				data = data[:2000]
			}
			b.Logf("sipp's errors at %d/s (first 2000 bytes):\n%s", rate, data)
		}
	}
	cols, last := lastRow(b, stat)
	get := func(name string) int {
		for i, c := range cols {
			if c == name && i < len(last) {
				v, _ := strconv.Atoi(last[i])
				return v
			}
		}
		b.Fatalf("sipp stat file has no %q: %v", name, cols)
		return 0
	}
	res.ok, res.failed, res.retrans = get("SuccessfulCall(C)"), get("FailedCall(C)"), get("Retransmissions(C)")
	return res
}

func lastRow(b *testing.B, path string) (cols, last []string) {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		b.Fatalf("%s: no rows", path)
	}
	return strings.Split(lines[0], ";"), strings.Split(lines[len(lines)-1], ";")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// logErrors prints FreeSWITCH's WARNING, ERR and CRIT log lines of the run, counted by
// text (without their time): what it said about the MESSAGEs it answered 500.
func logErrors(b *testing.B, path string) {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Log(err)
		return
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "[ERR] ")
		if i < 0 {
			i = strings.Index(line, "[CRIT] ")
		}
		if i < 0 {
			i = strings.Index(line, "[WARNING] ")
		}
		if i < 0 {
			continue
		}
		if len(counts) < 50 {
			counts[line[i:]]++
		}
	}
	for l, n := range counts {
		fmt.Printf("FreeSWITCH log, %d×: %s\n", n, l)
	}
}
