package relay

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipsilo/sipsilo/kv"
)

// Contacts tells the direct path where a recipient's device answers sipsilo.
type Contacts interface {
	// DirectTarget returns the Request-URI and the UDP host:port of a contact of
	// aor that answered sipsilo's own OPTIONS lately; ok is false when there is
	// none (behind NAT, not UDP, silent, or not pinged yet).
	DirectTarget(aor string) (uri, dest string, ok bool)
}

// DeviceContacts tells the direct path where one device answers sipsilo
// (presence.Reachability, per device). A Contacts that implements it lets
// SIPDirect serve device lanes too.
type DeviceContacts interface {
	DirectTargetDevice(aor, key string) (uri, dest string, ok bool)
}

// SIPDirect is the direct path: the MESSAGE goes from sipsilo's own SIP socket
// (the pinger's) to the device, with the original sender in From and the
// original time in Date, and the device's answer is the delivery result.
type SIPDirect struct {
	Client   *sipgo.Client
	Contacts Contacts
	// Timeout bounds the wait for the device's final answer. The transaction
	// ends with it: nothing is retransmitted afterwards.
	Timeout time.Duration // default 4 s
}

var _ DeviceDirect = (*SIPDirect)(nil)

var errBadHeader = errors.New("relay: header text unfit for a SIP message")

// Ready implements Direct.
func (d *SIPDirect) Ready(aor string) bool {
	_, _, ok := d.Contacts.DirectTarget(aor)
	return ok
}

// ReadyDevice implements DeviceDirect.
func (d *SIPDirect) ReadyDevice(aor, key string) bool {
	dc, ok := d.Contacts.(DeviceContacts)
	if !ok {
		return false
	}
	_, _, ok = dc.DirectTargetDevice(aor, key)
	return ok
}

// Send implements Direct.
func (d *SIPDirect) Send(ctx context.Context, m *kv.Message) (func(context.Context) (int, error), bool, error) {
	uri, dest, ok := d.Contacts.DirectTarget(m.To)
	if !ok {
		return nil, false, nil
	}
	return d.send(ctx, m, uri, dest)
}

// SendDevice implements DeviceDirect: the MESSAGE goes to device key's own
// contact, and only its answer is the copy's result.
func (d *SIPDirect) SendDevice(ctx context.Context, m *kv.Message, key string) (func(context.Context) (int, error), bool, error) {
	dc, ok := d.Contacts.(DeviceContacts)
	if !ok {
		return nil, false, nil
	}
	uri, dest, ok := dc.DirectTargetDevice(m.To, key)
	if !ok {
		return nil, false, nil
	}
	return d.send(ctx, m, uri, dest)
}

func (d *SIPDirect) send(ctx context.Context, m *kv.Message, uri, dest string) (func(context.Context) (int, error), bool, error) {
	req, err := directRequest(m, uri, dest)
	if err != nil {
		return nil, false, nil // through FreeSWITCH, which copes with what it sent us
	}
	tx, err := d.Client.TransactionRequest(ctx, req)
	if err != nil {
		return nil, false, nil // not sent: FreeSWITCH may still reach the device
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 4 * time.Second
	}
	wait := func(ctx context.Context) (int, error) {
		defer tx.Terminate()
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		for {
			select {
			case res := <-tx.Responses():
				if !res.IsProvisional() {
					return res.StatusCode, nil
				}
			case <-tx.Done():
				if err := tx.Err(); err != nil {
					return 0, err
				}
				return 0, errors.New("relay: transaction ended without an answer")
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	return wait, true, nil
}

// directRequest builds the MESSAGE. Everything in it comes from FreeSWITCH's
// form, which the sender partly controls, so each header value is checked for
// line breaks and control characters (a CR/LF would inject headers); the body
// travels as the body, with its Content-Length.
func directRequest(m *kv.Message, uri, dest string) (*sip.Request, error) {
	var ruri sip.Uri
	if err := sip.ParseUri(uri, &ruri); err != nil {
		return nil, err
	}
	fromUser, fromHost, ok1 := strings.Cut(m.From, "@")
	toUser, toHost, ok2 := strings.Cut(m.To, "@")
	ct := m.ContentType
	if ct == "" {
		ct = "text/plain"
	}
	for _, v := range []string{fromUser, fromHost, toUser, toHost, ct} {
		if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '<' || r == '>' || r == '"' }) {
			return nil, errBadHeader
		}
	}
	if !ok1 || !ok2 {
		return nil, errBadHeader
	}
	req := sip.NewRequest(sip.MESSAGE, ruri)
	req.SetTransport("UDP")
	req.SetDestination(dest)
	from := &sip.FromHeader{DisplayName: fromUser, Address: sip.Uri{Scheme: "sip", User: fromUser, Host: fromHost}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: toUser, Host: toHost}, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", ct))
	// The phone shows when the message was sent, not when it finally arrived.
	req.AppendHeader(sip.NewHeader("Date", m.Received.UTC().Format(http.TimeFormat)))
	req.SetBody(m.Body)
	return req, nil
}
