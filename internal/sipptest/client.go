package sipptest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// client is a sipgo client on one UDP socket of 127.0.0.1 (served, so that
// the responses come back to it), as fsemu's UA does it.
type client struct {
	pc  net.PacketConn
	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cl  *sipgo.Client
	wg  sync.WaitGroup
}

func newClient(log *slog.Logger) (*client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("sipptest/1.0"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log),
			// late answers to retransmissions (a resumed phone): not news
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				log.Debug("sipptest: unhandled response", "res", r.Short())
			})),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)))
	if err != nil {
		pc.Close()
		return nil, err
	}
	c := &client{pc: pc, ua: ua}
	c.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err == nil {
		c.cl, err = sipgo.NewClient(ua, sipgo.WithClientConnectionAddr(pc.LocalAddr().String()),
			sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientLogger(log))
	}
	if err != nil {
		ua.Close()
		pc.Close()
		return nil, err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = c.srv.ServeUDP(pc)
	}()
	// Until sipgo's pool holds the socket, a request from its address makes
	// sipgo bind the port again ("address already in use").
	deadline := time.Now().Add(2 * time.Second)
	for {
		if conn, err := ua.TransportLayer().GetConnection("udp", pc.LocalAddr().String()); err == nil && conn != nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.Close()
			return nil, errors.New("sipptest: client socket not served")
		}
		time.Sleep(time.Millisecond)
	}
}

// Addr is the client's address, 127.0.0.1:port.
func (c *client) Addr() string { return c.pc.LocalAddr().String() }

// Request sends method to user@addr (addr = host:port) and returns the
// final response. hs are added headers; a body needs a Content-Type in hs.
func (c *client) Request(ctx context.Context, method sip.RequestMethod, addr, user string, hs []sip.Header, body []byte) (*sip.Response, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, _ := strconv.Atoi(port)
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: user, Host: host, Port: p})
	req.SetTransport("UDP")
	req.SetDestination(addr)
	from := &sip.FromHeader{DisplayName: "sipptest", Address: sip.Uri{Scheme: "sip", User: "sipptest", Host: "127.0.0.1"}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1"}})
	for _, h := range hs {
		req.AppendHeader(h)
	}
	if body != nil {
		req.SetBody(body)
	}
	return c.cl.Do(ctx, req)
}

// Close stops the client and waits for its goroutines.
func (c *client) Close() {
	c.ua.Close()
	c.pc.Close()
	c.wg.Wait()
}
