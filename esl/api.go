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
// or "Error! Message Not Sent"). It is StartJob followed by Job.Wait.
func (c *Client) BgAPI(ctx context.Context, cmd, args, jobUUID string) (string, error) {
	j, err := c.StartJob(ctx, cmd, args, jobUUID)
	if err != nil {
		return "", err
	}
	return j.Wait(ctx)
}

// Job is a bgapi job FreeSWITCH accepted; Wait for its result.
type Job struct {
	c    *Client
	uuid string
	cmd  string
	ch   chan *Event
	lost <-chan struct{}
}

// StartJob sends "bgapi <cmd> <args>" with our own Job-UUID and returns once
// FreeSWITCH accepted it. FreeSWITCH starts its jobs in the order it accepted
// them, so callers that need an order start jobs one after another and wait for
// them together. The wait for the result is registered before the command is
// sent, so a result that overtakes the reply is not lost. It fails with
// ErrNotConnected at once when the event connection is down (the result could
// not arrive), and with ErrOutcomeUnknown when the command may have reached
// FreeSWITCH but its reply did not come back. Every Job must be waited for: Wait
// releases its registration.
func (c *Client) StartJob(ctx context.Context, cmd, args, jobUUID string) (*Job, error) {
	for what, s := range map[string]string{"bgapi command": cmd, "bgapi args": args, "Job-UUID": jobUUID} {
		if err := checkLine(what, s); err != nil {
			return nil, err
		}
	}
	if jobUUID == "" || strings.ContainsAny(jobUUID, " \t") || cmd == "" {
		return nil, fmt.Errorf("esl: bgapi needs a command and a Job-UUID without spaces: %w", ErrBadInput)
	}
	j := &Job{c: c, uuid: jobUUID, cmd: cmd, ch: make(chan *Event, 1)}
	c.mu.Lock()
	if _, dup := c.jobs[jobUUID]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("esl: Job-UUID %s already pending: %w", jobUUID, ErrBadInput)
	}
	c.jobs[jobUUID] = j.ch
	j.lost = c.lost
	c.mu.Unlock()
	// Checked after taking lost: the supervisor marks the connection down before
	// it closes lost, so one of the two tells.
	if !c.eventUp.Load() {
		j.release()
		return nil, fmt.Errorf("%w: no event connection for the job result", ErrNotConnected)
	}

	line := "bgapi " + cmd
	if args != "" {
		line += " " + args
	}
	f, err := c.command(ctx, line+"\nJob-UUID: "+jobUUID)
	if err != nil {
		j.release()
		if errors.Is(err, errMaybeSent) {
			return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return nil, err
	}
	if reply := f.replyText(); !strings.HasPrefix(reply, "+OK") {
		j.release()
		return nil, fmt.Errorf("%w: bgapi %s: %s", ErrCommand, cmd, reply)
	}
	return j, nil
}

// Wait returns the job's result: the body of its BACKGROUND_JOB event. ctx
// without a deadline is bounded by Config.JobTimeout. When the event connection
// drops or ctx ends first the outcome is unknown (ErrOutcomeUnknown); a result
// that comes later is delivered on Events.
func (j *Job) Wait(ctx context.Context) (string, error) {
	defer j.release()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, j.c.cfg.JobTimeout)
		defer cancel()
	}
	select {
	case e := <-j.ch:
		return e.Body, nil
	case <-j.lost:
		return "", fmt.Errorf("%w: %w: event connection lost before the result of job %s",
			ErrOutcomeUnknown, ErrNotConnected, j.uuid)
	case <-ctx.Done():
		return "", fmt.Errorf("%w: bgapi %s: no BACKGROUND_JOB for %s: %w", ErrOutcomeUnknown, j.cmd, j.uuid, ctx.Err())
	}
}

func (j *Job) release() {
	j.c.mu.Lock()
	if j.c.jobs[j.uuid] == j.ch {
		delete(j.c.jobs, j.uuid)
	}
	j.c.mu.Unlock()
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
