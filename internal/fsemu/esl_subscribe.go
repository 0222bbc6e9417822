package fsemu

import "strings"

// subscribe is the `event` command. rest is the command after its first five
// bytes; the names start after the next space and are split on single
// spaces. A first word plain/json/xml sets the format. After CUSTOM every
// word is taken as a subclass name, even a real event name: the
// subscription-order quirk of docs/decisions.md §3.
func (c *eslConn) subscribe(rest string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := 0
	if _, names, ok := strings.Cut(rest, " "); ok {
		custom := false
		for i, w := range strings.Split(names, " ") {
			if i == 0 {
				if f := strings.ToLower(w); f == FormatPlain || f == FormatJSON || f == "xml" {
					c.format = f
					continue
				}
			}
			if custom {
				c.subs[w] = true
				continue
			}
			name, ok := nameEvent(w)
			if !ok {
				continue
			}
			keys++
			// ALL sets every flag; event_handler then sends everything.
			c.list[name] = true
			if name == "CUSTOM" {
				custom = true
			}
		}
	}
	if keys == 0 {
		return "-ERR no keywords supplied"
	}
	c.events = true
	return "+OK event listener enabled " + c.format
}

// nix is `nixevent` (rest starts after "nixev", as the C does with cmd+5).
// Nixing one type while ALL is on turns ALL into "every type but this".
func (c *eslConn) nix(rest string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := 0
	if _, names, ok := strings.Cut(rest, " "); ok {
		custom := false
		for _, w := range strings.Split(names, " ") {
			if custom {
				delete(c.subs, w)
				continue
			}
			name, ok := nameEvent(w)
			if !ok {
				continue
			}
			keys++
			switch name {
			case "CUSTOM":
				custom = true
			case "ALL":
				c.list = map[string]bool{}
			default:
				if c.list["ALL"] {
					delete(c.list, "ALL")
					for _, n := range eventNames[:len(eventNames)-1] {
						c.list[n] = true
					}
				}
				delete(c.list, name)
			}
		}
	}
	if keys == 0 {
		return "-ERR no keywords supplied"
	}
	c.events = true
	return "+OK events nixed"
}

// filter is the `filter` command (rest is after "filter ").
func (c *eslConn) filter(rest string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	name, val, hasVal := strings.Cut(strings.TrimLeft(rest, " "), " ")
	f := &Event{Headers: c.filters}
	defer func() { c.filters = f.Headers }()
	switch {
	case strings.EqualFold(name, "delete") && hasVal:
		name, val, hasVal = strings.Cut(val, " ")
		if strings.EqualFold(name, "all") {
			f.Headers = nil
		} else {
			f.DelValue(name, val)
		}
		return "+OK filter deleted. [" + name + "][" + val + "]"
	case hasVal:
		if strings.EqualFold(name, "add") {
			name, val, hasVal = strings.Cut(val, " ")
			if !hasVal {
				// switch_event_add_header_string(NULL) adds nothing, and
				// glibc prints the NULL as "(null)".
				return "+OK filter added. [" + name + "]=[(null)]"
			}
		}
		f.Headers = append(f.Headers, Header{name, val})
		return "+OK filter added. [" + name + "]=[" + val + "]"
	}
	return "-ERR invalid syntax"
}

// passes applies the filters as event_handler does: with any filter set,
// an event needs a positive match on a header it has; a '-' value that
// matches vetoes it. A value whose first byte is '/' is a regex.
func (c *eslConn) passes(ev *Event) bool {
	if len(c.filters) == 0 {
		return true
	}
	send := false
	for _, f := range c.filters {
		hval, ok := ev.Value(f.Name)
		if !ok {
			continue
		}
		comp, pos := f.Value, true
		for comp != "" && (comp[0] == '+' || comp[0] == '-' || comp[0] == ' ') {
			switch comp[0] {
			case '+':
				pos = true
			case '-':
				pos = false
			}
			comp = comp[1:]
		}
		if send && pos {
			continue
		}
		var match bool
		if strings.HasPrefix(f.Value, "/") {
			match = regexPerform(hval, comp) != nil
		} else {
			match = strings.EqualFold(hval, comp)
		}
		if match {
			if !pos {
				return false
			}
			send = true
		}
	}
	return send
}
