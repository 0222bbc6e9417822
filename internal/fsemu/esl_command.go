package fsemu

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

func hasPrefixFold(s, p string) bool {
	return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
}

// command is parse_command for an inbound (non-session) listener. Commands
// are matched by prefix, case-insensitively and in the C's order, so
// "eventually" is an `event` command, as in FreeSWITCH. It returns the
// command/reply text ("" when the command wrote its own answer) and whether
// the connection goes on.
func (c *eslConn) command(p *packet) (string, bool) {
	cmd := p.cmd
	if hasPrefixFold(cmd, "exit") || strings.HasPrefix(cmd, "...") {
		return "+OK bye", false
	}
	c.mu.Lock()
	authed := c.authed
	c.mu.Unlock()
	if !authed {
		switch {
		case hasPrefixFold(cmd, "auth "):
			if cmd[5:] != c.srv.opts.Password {
				return "-ERR invalid", false
			}
			c.mu.Lock()
			c.authed = true
			c.mu.Unlock()
			return "+OK accepted", true
		case hasPrefixFold(cmd, "userauth "):
			// No directory here, so every userauth fails like an unknown user.
			return "-ERR invalid", false
		}
		return "-ERR command not found", true
	}
	switch {
	case hasPrefixFold(cmd, "filter "):
		return c.filter(cmd[7:]), true
	case hasPrefixFold(cmd, "divert_events"):
		return "-ERR not controlling a session.", true
	case hasPrefixFold(cmd, "sendmsg"):
		uuid := strings.TrimLeft(cmd[7:], " ")
		if uuid == "" {
			uuid, _ = p.header("session-id")
		}
		return "-ERR invalid session id [" + uuid + "]", true
	case hasPrefixFold(cmd, "sendevent"):
		return c.sendEvent(p), true
	case hasPrefixFold(cmd, "api "):
		name, arg, _ := strings.Cut(cmd[4:], " ")
		reply := c.srv.runAPI(name, arg)
		if reply == "" {
			reply = "-ERR no reply\n"
		}
		if d := c.srv.delay(); d > 0 {
			select {
			case <-time.After(d):
			case <-c.dead:
				return "", false
			}
		}
		return "", c.write("Content-Type: api/response\nContent-Length: " + strconv.Itoa(len(reply)) + "\n\n" + reply)
	case hasPrefixFold(cmd, "bgapi "):
		return c.srv.bgapi(cmd[6:], p), true
	case hasPrefixFold(cmd, "log"):
		return c.log(cmd[3:]), true
	case hasPrefixFold(cmd, "linger"), hasPrefixFold(cmd, "nolinger"):
		return "-ERR not controlling a session", true
	case hasPrefixFold(cmd, "nolog"):
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.logging {
			return "-ERR not loging", true // sic
		}
		c.logging = false
		return "+OK no longer logging", true
	case hasPrefixFold(cmd, "event"):
		return c.subscribe(cmd[5:]), true
	case hasPrefixFold(cmd, "nixevent"):
		return c.nix(cmd[5:]), true
	case hasPrefixFold(cmd, "noevents"):
		c.mu.Lock()
		defer c.mu.Unlock()
		c.queue = nil
		if !c.events {
			return "-ERR not listening for events", true
		}
		c.events = false
		c.list, c.subs = map[string]bool{}, map[string]bool{}
		return "+OK no longer listening for events", true
	}
	return "-ERR command not found", true
}

// runAPI is switch_api_execute as api_exec sees it: name and argument are
// whitespace-stripped, an unknown name gives "-ERR <name> Command not
// found!\n" with the name as typed.
func (s *ESLServer) runAPI(name, arg string) string {
	fn := s.api(name)
	if fn == nil {
		return "-ERR " + name + " Command not found!\n"
	}
	return fn(stripWhitespace(arg))
}

// bgapi answers at once with the Job-UUID (the client's Job-UUID header,
// cut to 36 bytes as switch_copy_string into uuid_str does, or a new one)
// and runs the command in a tracked goroutine that fires BACKGROUND_JOB.
func (s *ESLServer) bgapi(rest string, p *packet) string {
	name, arg, hasArg := strings.Cut(rest, " ")
	uuid, ok := p.header("job-uuid")
	if !ok {
		uuid = newUUID()
	}
	if len(uuid) > 36 {
		uuid = uuid[:36]
	}
	s.mu.Lock()
	epoch := s.epoch
	prev, mine := s.bgPrev, make(chan struct{})
	s.bgPrev = mine
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		started := sync.OnceFunc(func() { close(mine) })
		defer started()
		select {
		case <-prev: // jobs start in arrival order, as FreeSWITCH's threads do
		case <-s.done:
			return
		}
		var reply string
		if fn := s.orderedAPI(name); fn != nil {
			reply = fn(stripWhitespace(arg), started)
		} else {
			started()
			reply = s.runAPI(name, arg)
		}
		if d := s.delay(); d > 0 {
			select {
			case <-time.After(d):
			case <-s.done:
				return
			}
		}
		ev := &Event{Headers: []Header{{"Event-Name", "BACKGROUND_JOB"}, {"Job-UUID", uuid}, {"Job-Command", name}}}
		if hasArg {
			ev.Headers = append(ev.Headers, Header{"Job-Command-Arg", arg})
		}
		ev.Body = reply
		s.mu.Lock()
		forgotten := s.epoch != epoch // the switch restarted: the job died with it
		s.mu.Unlock()
		if forgotten {
			return
		}
		s.Fire(ev)
	}()
	return "~Reply-Text: +OK Job-UUID: " + uuid + "\nJob-UUID: " + uuid + "\n\n"
}

// sendEvent fires the command's own headers as an event the way
// `sendevent` does: Command, the client's headers verbatim (Content-Length
// included), Event-UUID, then the standard headers at the bottom. An
// unknown name leaves the event a CLONE.
func (c *eslConn) sendEvent(p *packet) string {
	uuid := newUUID()
	name, ok := nameEvent(strings.TrimLeft(p.cmd[9:], " \t"))
	if !ok {
		name = "CLONE"
	}
	ev := &Event{Body: p.body}
	ev.Headers = append(ev.Headers, Header{"Command", p.cmd})
	ev.Headers = append(ev.Headers, p.headers...)
	ev.Headers = append(ev.Headers, Header{"Event-UUID", uuid})
	s := c.srv
	appendStd(ev, name, s.identity(), s.opts.Clock(), s.NextSequence(), [3]string{"mod_event_socket.c", "parse_command", "2275"})
	s.mu.Lock()
	hook := s.onSendEvent
	s.mu.Unlock()
	s.Fire(ev)
	if hook != nil {
		hook(ev.Clone())
	}
	return "+OK " + uuid
}

// logLevels is switch_log_str2level's table, index = level.
var logLevels = []string{"CONSOLE", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG"}

// log accepts the level like parse_command; no log lines are ever sent.
func (c *eslConn) log(rest string) string {
	level := rest
	if level != "" {
		level = level[1:]
	}
	lv := 7
	if level != "" {
		lv = -1
		if n, err := strconv.Atoi(level); err == nil && level[0] >= '0' && level[0] <= '9' {
			lv = n
		}
		for i, n := range logLevels {
			if strings.EqualFold(level, n) {
				lv = i
			}
		}
	}
	if lv < 0 {
		return "-ERR invalid log level"
	}
	c.mu.Lock()
	c.logging = true
	c.mu.Unlock()
	return "+OK log level " + level + " [" + strconv.Itoa(lv) + "]"
}
