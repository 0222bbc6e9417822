package fsemu

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawClient is a bare TCP ESL client that records what it receives, like
// the capture drivers.
type rawClient struct {
	t    *testing.T
	nc   net.Conn
	r    *bufio.Reader
	seen []byte
}

func dialESL(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// frame reads one frame: a header block ended by an empty line plus
// Content-Length bytes when that header is there.
func (c *rawClient) frame() ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	var buf bytes.Buffer
	clen := 0
	for {
		line, err := c.r.ReadString('\n')
		buf.WriteString(line)
		if err != nil {
			return buf.Bytes(), err
		}
		if line == "\n" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			clen, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, clen)
	_, err := io.ReadFull(c.r, body)
	buf.Write(body)
	c.seen = append(c.seen, buf.Bytes()...)
	return buf.Bytes(), err
}

func (c *rawClient) mustFrame() []byte {
	c.t.Helper()
	f, err := c.frame()
	if err != nil {
		c.t.Fatalf("reading frame: %v (got %q)", err, f)
	}
	return f
}

func (c *rawClient) expect(want string) {
	c.t.Helper()
	if got := c.mustFrame(); string(got) != want {
		c.t.Fatalf("frame:\n got %q\nwant %q", got, want)
	}
}

// expectEOF checks the server closed the socket with nothing more to say.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	rest, err := io.ReadAll(c.r)
	if err != nil || len(rest) != 0 {
		c.t.Fatalf("want EOF, got %q, %v", rest, err)
	}
}

// fakeClock is a settable clock for event timestamps and uptime.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
	up  time.Duration
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Uptime() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up
}

func (f *fakeClock) set(ts string, up time.Duration) {
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now, f.up = time.UnixMicro(us).UTC(), up
}

// setSeq makes the server's next generated Event-Sequence equal next.
func setSeq(t *testing.T, s *ESLServer, next string) {
	t.Helper()
	n, err := strconv.ParseUint(next, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.seq = n - 1
	s.mu.Unlock()
}

// parseUpTime reads send_heartbeat's Up-Time text back into a duration.
func parseUpTime(t *testing.T, s string) time.Duration {
	t.Helper()
	units := map[string]time.Duration{
		"year": 365 * 24 * time.Hour, "day": 24 * time.Hour, "hour": time.Hour,
		"minute": time.Minute, "second": time.Second,
		"millisecond": time.Millisecond, "microsecond": time.Microsecond,
	}
	var d time.Duration
	for _, part := range strings.Split(s, ", ") {
		n, unit, _ := strings.Cut(part, " ")
		v, err := strconv.Atoi(n)
		u, ok := units[strings.TrimSuffix(unit, "s")]
		if err != nil || !ok {
			t.Fatalf("bad Up-Time %q", s)
		}
		d += time.Duration(v) * u
	}
	return d
}
