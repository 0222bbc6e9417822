package esl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// conn is one authenticated inbound ESL connection. After the handshake a single
// read loop owns the socket: replies go to the one command in flight, events are
// handed to onEvent in the loop itself, so they leave in the order they arrived.
type conn struct {
	nc  net.Conn
	br  *bufio.Reader
	log *slog.Logger

	// idle, when set, bounds the wait for each frame: the event connection's
	// heartbeat watchdog (FreeSWITCH sends HEARTBEAT every 20 s).
	idle    time.Duration
	onEvent func(*frame)
	pending []*frame // events read during the handshake, delivered first

	sem     chan struct{}  // one command in flight
	replies chan *frame    // cap 1: the reply to that command
	quit    chan struct{}  // closed by close
	done    chan struct{}  // closed when the read loop has ended
	once    sync.Once      // guards close
	err     error          // why the read loop ended; read after done
	wg      sync.WaitGroup // the read loop
}

// dial connects and authenticates under ctx, which should carry the dial deadline.
// Every step is a plain read or write on a socket with a deadline, so a peer that
// accepts and then stays silent costs one timeout and leaves nothing behind.
func dial(ctx context.Context, addr, password string, log *slog.Logger) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{
		nc:      nc,
		br:      bufio.NewReaderSize(nc, 64<<10),
		log:     log,
		sem:     make(chan struct{}, 1),
		replies: make(chan *frame, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	// Cancelling ctx cuts a blocked read or write short at once.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	f, err := readFrame(c.br)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("esl: waiting for auth/request: %w", err)
	}
	if ct := f.contentType(); ct != typeAuthRequest {
		nc.Close()
		return nil, fmt.Errorf("esl: greeted with %q, not auth/request: %s", ct, strings.TrimSpace(string(f.body)))
	}
	if err := checkLine("password", password); err != nil {
		nc.Close()
		return nil, err
	}
	reply, err := c.exchange("auth " + password)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("esl: auth: %w", err)
	}
	if !strings.HasPrefix(reply, "+OK") {
		nc.Close()
		return nil, fmt.Errorf("%w: FreeSWITCH answered %q", ErrAuthRefused, reply)
	}
	return c, nil
}

// exchange sends one command and reads its reply synchronously; only for the
// handshake, before the read loop runs. Events that come first are kept for it.
func (c *conn) exchange(cmd string) (string, error) {
	if _, err := c.nc.Write([]byte(cmd + "\n\n")); err != nil {
		return "", err
	}
	for {
		f, err := readFrame(c.br)
		if err != nil {
			return "", err
		}
		switch ct := f.contentType(); ct {
		case typeReply, typeAPIResponse:
			return f.replyText(), nil
		case typeEventJSON, typeEventPlain:
			c.pending = append(c.pending, f)
		default:
			return "", fmt.Errorf("unexpected %q frame", ct)
		}
	}
}

// start clears the handshake deadline and starts the read loop.
func (c *conn) start(idle time.Duration, onEvent func(*frame)) {
	_ = c.nc.SetDeadline(time.Time{})
	c.idle, c.onEvent = idle, onEvent
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.readLoop()
	}()
}

func (c *conn) readLoop() {
	defer close(c.done)
	defer c.nc.Close()
	for _, f := range c.pending {
		c.deliver(f)
	}
	c.pending = nil
	for {
		if c.idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
		}
		f, err := readFrame(c.br)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && c.idle > 0 {
				err = fmt.Errorf("%w: nothing received for %v", ErrSilent, c.idle)
			}
			c.err = err
			return
		}
		switch ct := f.contentType(); ct {
		case typeReply, typeAPIResponse:
			select {
			case c.replies <- f:
			default:
				// Nobody asked: the stream no longer pairs replies with commands.
				c.err = errors.New("esl: reply with no command waiting")
				return
			}
		case typeEventJSON, typeEventPlain:
			c.deliver(f)
		case typeDisconnect:
			c.err = fmt.Errorf("%w: %s", ErrDisconnected, strings.TrimSpace(string(f.body)))
			return
		default:
			// eslgo's loop ends quietly here and leaves a zombie (docs/decisions.md §17); a
			// frame we do not understand ends the connection loudly instead.
			c.err = fmt.Errorf("esl: unexpected %q frame", ct)
			return
		}
	}
}

// deliver hands one event to onEvent; a panic there costs that event, not the
// process.
func (c *conn) deliver(f *frame) {
	if c.onEvent == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("event handler panicked; event dropped", "err", fmt.Errorf("panic: %v", r))
		}
	}()
	c.onEvent(f)
}

// command sends cmd (already checked for CR/LF in its parts) and waits for its
// reply until ctx ends. On a timeout the connection is closed: FreeSWITCH would
// still answer, and that late reply must not become the next command's
// (a defect eslgo has, docs/decisions.md §17).
func (c *conn) command(ctx context.Context, cmd string) (*frame, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.closedErr()
	}
	defer func() { <-c.sem }()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetWriteDeadline(dl)
	}
	if _, err := c.nc.Write([]byte(cmd + "\n\n")); err != nil {
		c.close()
		return nil, fmt.Errorf("esl: write: %w (%w)", err, errMaybeSent)
	}
	select {
	case f := <-c.replies:
		return f, nil
	case <-c.done:
		return nil, fmt.Errorf("%w (%w)", c.closedErr(), errMaybeSent)
	case <-ctx.Done():
		c.close()
		return nil, fmt.Errorf("esl: no reply, connection replaced: %w (%w)", ctx.Err(), errMaybeSent)
	}
}

func (c *conn) closedErr() error {
	<-c.done
	if c.err != nil {
		return fmt.Errorf("%w: %v", ErrNotConnected, c.err)
	}
	return ErrNotConnected
}

// close stops the read loop and waits for it. Safe to call more than once and from
// any goroutine other than the read loop's.
func (c *conn) close() {
	c.once.Do(func() {
		close(c.quit)
		_ = c.nc.Close()
	})
	c.wg.Wait()
}
