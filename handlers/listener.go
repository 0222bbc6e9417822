package handlers

import (
	"bytes"
	"fmt"
	"net"
	"net/http"

	"github.com/sipsilo/sipsilo/dialplan"
)

// Serve runs srv on ln (see NewServer). Requests too large for the server to read
// get the not-found document rather than net/http's plain-text 431, which it
// writes itself before any handler runs: a chatplan client must always be able to
// parse the answer as "deliver it yourself".
func Serve(srv *http.Server, ln net.Listener) error {
	return srv.Serve(notFoundListener{ln})
}

// go431 is the whole answer net/http writes, in one write, for headers over
// MaxHeaderBytes; matched exactly, so no other write can be mistaken for it.
var go431 = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\n\r\n431 Request Header Fields Too Large")

var notFound431 = func() []byte {
	doc := dialplan.NotFound()
	return fmt.Appendf(nil, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/xml\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(doc), doc)
}()

type notFoundListener struct{ net.Listener }

func (l notFoundListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &notFoundConn{Conn: c}, nil
}

// notFoundConn replaces net/http's own 431 answer with the not-found document.
type notFoundConn struct{ net.Conn }

func (c *notFoundConn) Write(p []byte) (int, error) {
	if bytes.Equal(p, go431) {
		if _, err := c.Conn.Write(notFound431); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite keeps net/http's half-close before it hangs up after an error.
func (c *notFoundConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
