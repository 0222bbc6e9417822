package esl

import "sync/atomic"

// Stats counts the Client's connections since it started.
type Stats struct {
	// EventConnects and CommandConnects count connections established (the first
	// included): every one after the first is a reconnect.
	EventConnects, CommandConnects int64
	// EventDialFailures and CommandDialFailures count attempts that did not get a
	// connection up (refused, auth, subscription, timeout).
	EventDialFailures, CommandDialFailures int64
	// Up reports whether both connections are established now.
	Up bool
}

type stats struct {
	eventConnects, commandConnects, eventFailures, commandFailures atomic.Int64
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	return Stats{
		EventConnects:       c.st.eventConnects.Load(),
		CommandConnects:     c.st.commandConnects.Load(),
		EventDialFailures:   c.st.eventFailures.Load(),
		CommandDialFailures: c.st.commandFailures.Load(),
		Up:                  c.Up(),
	}
}
