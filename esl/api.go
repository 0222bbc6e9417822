package esl

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// API runs "api <cmd>" on the command connection and returns FreeSWITCH's output.
// One command is in flight at a time; each waits at most CommandTimeout (or ctx).
// A reply starting with "-ERR" is returned as the text together with ErrCommand.
func (c *Client) API(ctx context.Context, cmd string) (string, error) {
	if err := checkLine("api command", cmd); err != nil {
		return "", err
	}
	f, err := c.command(ctx, "api "+cmd)
	if err != nil {
		return "", err
	}
	out := string(f.body)
	if strings.HasPrefix(out, "-ERR") {
		return out, fmt.Errorf("%w: api %s: %s", ErrCommand, firstWord(cmd), strings.TrimSpace(out))
	}
	return out, nil
}

// BgAPI runs "bgapi <cmd> <args>" with our own Job-UUID and waits for the
// BACKGROUND_JOB event carrying it; result is that event's body (for chat: "Sent"
// or "Error! Message Not Sent"). The wait is registered before the command is
// sent, so a result that overtakes the reply is not lost. It fails with
// ErrNotConnected at once when the event connection is down, and as soon as it
// drops while waiting: the result cannot arrive any more, though the job may
// have run. A result that comes after BgAPI gave up is delivered on Events.
func (c *Client) BgAPI(ctx context.Context, cmd, args, jobUUID string) (string, error) {
	for what, s := range map[string]string{"bgapi command": cmd, "bgapi args": args, "Job-UUID": jobUUID} {
		if err := checkLine(what, s); err != nil {
			return "", err
		}
	}
	if jobUUID == "" || strings.ContainsAny(jobUUID, " \t") || cmd == "" {
		return "", fmt.Errorf("esl: bgapi needs a command and a Job-UUID without spaces: %w", ErrBadInput)
	}
	ch := make(chan *Event, 1)
	c.mu.Lock()
	if _, dup := c.jobs[jobUUID]; dup {
		c.mu.Unlock()
		return "", fmt.Errorf("esl: Job-UUID %s already pending: %w", jobUUID, ErrBadInput)
	}
	c.jobs[jobUUID] = ch
	lost := c.lost
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.jobs[jobUUID] == ch {
			delete(c.jobs, jobUUID)
		}
		c.mu.Unlock()
	}()
	// Checked after taking lost: the supervisor marks the connection down before
	// it closes lost, so one of the two tells.
	if !c.eventUp.Load() {
		return "", fmt.Errorf("%w: no event connection for the job result", ErrNotConnected)
	}

	line := "bgapi " + cmd
	if args != "" {
		line += " " + args
	}
	f, err := c.command(ctx, line+"\nJob-UUID: "+jobUUID)
	if errors.Is(err, errMaybeSent) {
		return "", fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if err != nil {
		return "", err
	}
	if reply := f.replyText(); !strings.HasPrefix(reply, "+OK") {
		return "", fmt.Errorf("%w: bgapi %s: %s", ErrCommand, cmd, reply)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.JobTimeout)
		defer cancel()
	}
	select {
	case e := <-ch:
		return e.Body, nil
	case <-lost:
		return "", fmt.Errorf("%w: %w: event connection lost before the result of job %s",
			ErrOutcomeUnknown, ErrNotConnected, jobUUID)
	case <-ctx.Done():
		return "", fmt.Errorf("%w: bgapi %s: no BACKGROUND_JOB for %s: %w", ErrOutcomeUnknown, cmd, jobUUID, ctx.Err())
	}
}

// command sends one command on the current command connection, waiting for one
// to come up while ctx allows, under CommandTimeout.
func (c *Client) command(ctx context.Context, cmd string) (*frame, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CommandTimeout)
	defer cancel()
	for {
		c.mu.Lock()
		cc, wake := c.cmd, c.cmdWake
		c.mu.Unlock()
		if cc != nil {
			select {
			case <-cc.done: // closed, not yet replaced: wait for the next one
				cc = nil
			default:
			}
		}
		if cc != nil {
			f, err := cc.command(ctx, cmd)
			if err != nil && errors.Is(err, context.DeadlineExceeded) {
				c.log.Warn("command timed out, command connection replaced", "command", firstWord(cmd), "err", err)
			}
			return f, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		}
	}
}

// firstWord names a command in logs and errors without its arguments, which may
// hold a message body.
func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	if w == "api" || w == "bgapi" {
		rest := strings.TrimPrefix(s, w+" ")
		w2, _, _ := strings.Cut(rest, " ")
		return w + " " + w2
	}
	return w
}
