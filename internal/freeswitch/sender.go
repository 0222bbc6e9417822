package freeswitch

import (
	"context"
	"errors"
	"fmt"

	"github.com/sipsilo/sipsilo/esl"
	"github.com/sipsilo/sipsilo/relay"
)

// Sender gives relay FreeSWITCH's command connection (relay.Sender): bgapi chat
// with its BACKGROUND_JOB, and api for sofia_contact.
type Sender struct{ Client *esl.Client }

// StartJob sends a bgapi command and returns once FreeSWITCH accepted it.
func (s Sender) StartJob(ctx context.Context, cmd, args, jobUUID string) (relay.Job, error) {
	j, err := s.Client.StartJob(ctx, cmd, args, jobUUID)
	if err != nil {
		return nil, outcome(err)
	}
	return job{j}, nil
}

type job struct{ j *esl.Job }

// Wait waits for the job's BACKGROUND_JOB.
func (j job) Wait(ctx context.Context) (string, error) {
	reply, err := j.j.Wait(ctx)
	return reply, outcome(err)
}

// outcome tells relay, in its own terms, that a job's result cannot be known.
func outcome(err error) error {
	if err != nil && errors.Is(err, esl.ErrOutcomeUnknown) && !errors.Is(err, relay.ErrOutcomeUnknown) {
		return fmt.Errorf("%w: %w", relay.ErrOutcomeUnknown, err)
	}
	return err
}

// API runs one api command.
func (s Sender) API(ctx context.Context, cmd string) (string, error) { return s.Client.API(ctx, cmd) }

var _ relay.Sender = Sender{}
