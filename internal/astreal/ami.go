package astreal

import (
	"bufio"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// amiLogin logs in to the manager at addr and off again: the harness's own
// check, independent of sipsilo's AMI client under test.
func amiLogin(addr, user, secret string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	r := textproto.NewReader(bufio.NewReader(c))
	banner, err := r.ReadLine()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(banner, "Asterisk Call Manager/") {
		return fmt.Errorf("astreal: %s is not AMI (%q)", addr, banner)
	}
	if _, err := fmt.Fprintf(c, "Action: Login\r\nActionID: 1\r\nUsername: %s\r\nSecret: %s\r\nEvents: off\r\n\r\n", user, secret); err != nil {
		return err
	}
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return err
	}
	if h.Get("Response") != "Success" {
		return fmt.Errorf("astreal: AMI login: %s", h.Get("Message"))
	}
	_, _ = fmt.Fprint(c, "Action: Logoff\r\n\r\n")
	return nil
}
