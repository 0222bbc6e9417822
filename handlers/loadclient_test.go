package handlers

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	freeswitchconf "github.com/sipsilo/sipsilo/freeswitch-conf"
	"github.com/sipsilo/sipsilo/internal/fsemu"
)

// loadClient sends the bytes FreeSWITCH 1.10.12 sends for one chatplan lookup
// (built once by fsemu) and checks that sipsilo took the message over. It is lean on
// purpose: the load generator shares this machine's two cores with sipsilo.
// With keepAlive false it opens a new connection per request, as mod_xml_curl does.
type loadClient struct {
	req       []byte
	addr      string
	keepAlive bool
	conn      net.Conn
	r         *bufio.Reader
}

func newLoadClient(keepAlive bool, url string) (*loadClient, error) {
	// The binding fs-config ships (the exact text/md5 pair): without an event
	// socket, only an exact body lets the intake own a message.
	x := &fsemu.XMLCurl{URL: freeswitchconf.ChatplanURLFor(strings.TrimPrefix(url, "http://"))}
	ev := fsemu.NewMessageEvent(fsemu.MessageParams{Sequence: 1, FromTag: "bench", Body: "hello, this is a typical short message ü"})
	req, err := x.BuildRequest(ev)
	if err != nil {
		return nil, err
	}
	if !keepAlive && !bytes.Contains(req, []byte("\r\nHost: ")) {
		return nil, fmt.Errorf("unexpected request %q", req)
	}
	return &loadClient{req: req, addr: strings.TrimPrefix(url, "http://"), keepAlive: keepAlive}, nil
}

func (c *loadClient) do() error {
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return err
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	if !c.keepAlive {
		defer c.close()
	}
	if _, err := c.conn.Write(c.req); err != nil {
		c.close()
		return err
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.close()
		return err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		c.close()
		return err
	}
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`application="final"`)) {
		return fmt.Errorf("status %d: %.200s", res.StatusCode, body)
	}
	return nil
}

func (c *loadClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}
