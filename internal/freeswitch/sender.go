package freeswitch

import (
	"context"

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
		return nil, err
	}
	return j, nil
}

// API runs one api command.
func (s Sender) API(ctx context.Context, cmd string) (string, error) { return s.Client.API(ctx, cmd) }

var _ relay.Sender = Sender{}
