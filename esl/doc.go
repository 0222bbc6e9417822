// Package esl is sipsilo's connection to FreeSWITCH's event socket: one
// connection that only receives events and hands them on in the order FreeSWITCH
// sent them, and one for api/bgapi commands, both kept up by a supervisor
// (Client.Run) with backoff, resubscription and a heartbeat watchdog.
//
// It is an in-house client, not a wrapper of eslgo v1.5.0, because eslgo's
// defects make a correct wrapper impossible (docs/decisions.md §17). Two do,
// both read in eslgo's source (connection.go, inbound.go):
//
//   - Order. eslgo's event loop runs "go listener(event)" for every
//     event and never calls our code in its own goroutine, so nothing of ours
//     runs in read order: a stamp taken in the listener is already taken in
//     scheduling order. Event-Sequence cannot stand in for arrival order either:
//     it repeats (a chatplan reply copies it) and restarts with FreeSWITCH.
//   - Dial. InboundOptions.Dial waits for auth/request with a bare
//     channel receive. Against a peer that accepts and stays silent it never
//     returns, and the socket it dialled is out of our reach, so no timeout,
//     context or Close can end that goroutine or close that socket; a supervisor
//     that abandons such dials leaks one goroutine and one socket per attempt.
//
// The protocol is small (mod_event_socket.c): frames of header lines ended by an empty
// line, with a body when Content-Length is present. Here every read and write has
// a deadline, one read loop per connection owns the socket, replies pair with
// the single command in flight, and a command that times out closes its
// connection so that its late reply cannot answer the next command (docs/decisions.md §17).
package esl
