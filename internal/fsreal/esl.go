package fsreal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// errPassword is FreeSWITCH refusing the ESL password.
var errPassword = errors.New("fsreal: ESL password refused")

// api logs in to addr, runs one api command and returns its body. It is the
// harness's own small client, independent of sipsilo's esl package under test.
func api(ctx context.Context, addr, password, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	if err := c.SetDeadline(deadline); err != nil {
		return "", err
	}
	r := textproto.NewReader(bufio.NewReader(c))
	h, _, err := readFrame(r)
	if err != nil {
		return "", err
	}
	if h.Get("Content-Type") != "auth/request" {
		return "", fmt.Errorf("fsreal: %s is not an event socket (%q)", addr, h.Get("Content-Type"))
	}
	if _, err := fmt.Fprintf(c, "auth %s\n\n", password); err != nil {
		return "", err
	}
	if h, _, err = readFrame(r); err != nil {
		return "", err
	}
	if !strings.HasPrefix(h.Get("Reply-Text"), "+OK") {
		return "", errPassword
	}
	if _, err := fmt.Fprintf(c, "api %s\n\n", cmd); err != nil {
		return "", err
	}
	for range 16 { // a log or event frame could come first; bounded
		h, body, err := readFrame(r)
		if err != nil {
			return "", err
		}
		if h.Get("Content-Type") == "api/response" {
			_, _ = fmt.Fprint(c, "exit\n\n")
			return string(body), nil
		}
	}
	return "", fmt.Errorf("fsreal: no api/response to %q", cmd)
}

// readFrame reads one ESL frame: headers, then Content-Length bytes.
func readFrame(r *textproto.Reader) (textproto.MIMEHeader, []byte, error) {
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return nil, nil, err
	}
	n := 0
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err = strconv.Atoi(cl); err != nil || n < 0 || n > 64<<20 {
			return nil, nil, fmt.Errorf("fsreal: Content-Length %q", cl)
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r.R, body)
	return h, body, err
}
