package asterisk

import (
	"context"
	"errors"

	"github.com/sipsilo/sipsilo/relay"
)

// ErrDirectOnly is what DirectOnly answers: with Asterisk, sipsilo delivers
// only over its own direct path, so a message waits until a device of the
// recipient answers sipsilo's OPTIONS.
var ErrDirectOnly = errors.New("asterisk: not sent: no device of the recipient answers sipsilo directly yet " +
	"(Asterisk's MessageSend cannot confirm a delivery)")

// DirectOnly is relay's Sender beside Asterisk. AMI MessageSend and ARI
// sendMessage report success whether the phone answered 200, 486 or nothing
// (docs/decisions.md §33), so no delivery goes through Asterisk: relay tries
// the direct path first, and this sender turns every other send into a short
// hold and a retry.
type DirectOnly struct{}

var _ relay.Sender = DirectOnly{}

// StartJob implements relay.Sender.
func (DirectOnly) StartJob(context.Context, string, string, string) (relay.Job, error) {
	return nil, ErrDirectOnly
}

// API implements relay.Sender; relay's registration check then counts the
// recipient as registered, which errs towards retrying.
func (DirectOnly) API(context.Context, string) (string, error) { return "", ErrDirectOnly }
