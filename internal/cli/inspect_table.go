package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/sipsilo/sipsilo/kv"
)

// table writes rows under a header, aligned. Every cell goes through cell, so
// text from the network (bodies, addresses, results) cannot move the cursor or
// break the columns of the operator's terminal.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// cell makes s safe for one table cell: shown as a quoted Go string when it holds
// anything but printable characters and spaces, and cut to max runes.
func cell(s string, max int) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		s = strconv.Quote(s)
	}
	if r := []rune(s); max > 0 && len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func age(seconds float64) string {
	return (time.Duration(seconds * float64(time.Second))).Round(time.Second).String()
}

func bodyCell(v kv.MessageView, max int) string {
	switch {
	case v.BodyHash != "":
		return fmt.Sprintf("<redacted len=%d hash=%s>", v.BodyLen, v.BodyHash)
	case v.Body != nil:
		return cell(*v.Body, max)
	case v.BodyBase64 != nil:
		return fmt.Sprintf("<%d bytes, not UTF-8>", v.BodyLen)
	}
	return "-"
}

// more tells how to get the next page, when there is one.
func more(w io.Writer, next string) {
	if next != "" {
		fmt.Fprintf(w, "\nmore: --after %s\n", cell(next, 0))
	}
}

func statsTable(w io.Writer, path string, s kv.Summary, top int) error {
	states := make([]string, 0, len(s.ByState))
	for st := range s.ByState {
		states = append(states, string(st))
	}
	sort.Strings(states)
	rows := [][]string{
		{"file", cell(path, 0) + fmt.Sprintf(" (%d bytes)", s.FileBytes)},
		{"messages", strconv.Itoa(s.Messages)},
	}
	for _, st := range states {
		rows = append(rows, []string{"  " + st, strconv.Itoa(s.ByState[kv.State(st)])})
	}
	oldest := "-"
	if !s.OldestQueued.IsZero() {
		oldest = ts(s.OldestQueued) + " (" + age(s.OldestQueuedAge) + " ago)"
	}
	rows = append(rows,
		[]string{"queue entries", fmt.Sprintf("%d (recipients: %d)", s.QueueEntries, len(s.Recipients))},
		[]string{"oldest queued", oldest},
		[]string{"outbox backlog", fmt.Sprintf("%d records", s.OutboxRecords)},
		[]string{"presence", fmt.Sprintf("%d records", s.PresenceRecords)})
	if err := table(w, []string{"STATS", ""}, rows); err != nil {
		return err
	}
	if len(s.Recipients) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return recipientsTable(w, s.Recipients, top)
}

func recipientsTable(w io.Writer, rs []kv.RecipientQueue, top int) error {
	shown := rs
	if top > 0 && len(shown) > top {
		shown = shown[:top]
	}
	rows := make([][]string, 0, len(shown))
	for _, r := range shown {
		rows = append(rows, []string{cell(r.AOR, 60), strconv.Itoa(r.Queued), ts(r.Oldest), age(r.OldestAge)})
	}
	if err := table(w, []string{"RECIPIENT", "QUEUED", "OLDEST", "AGE"}, rows); err != nil {
		return err
	}
	if len(shown) < len(rs) {
		fmt.Fprintf(w, "\n%d more recipients (--limit 0 or --json lists all)\n", len(rs)-len(shown))
	}
	return nil
}

func queueTable(w io.Writer, p kv.Page[kv.MessageView]) error {
	rows := make([][]string, 0, len(p.Items))
	for _, v := range p.Items {
		rows = append(rows, []string{cell(v.ID, 0), ts(v.Received), age(v.Age), cell(v.From, 40),
			strconv.Itoa(v.Attempts), cell(v.LastResult, 30), bodyCell(v, 40)})
	}
	if err := table(w, []string{"ID", "RECEIVED", "AGE", "FROM", "ATTEMPTS", "LAST RESULT", "BODY"}, rows); err != nil {
		return err
	}
	more(w, p.Next)
	return nil
}

func stateTable(w io.Writer, state string, p kv.Page[kv.MessageView]) error {
	rows := make([][]string, 0, len(p.Items))
	for _, v := range p.Items {
		rows = append(rows, []string{cell(v.ID, 0), cell(string(v.State), 0), ts(v.Updated), cell(v.From, 30), cell(v.To, 30),
			strconv.Itoa(v.Attempts), cell(v.Reason, 60)})
	}
	if len(rows) == 0 {
		fmt.Fprintf(w, "no messages in state %s\n", cell(state, 0))
		return nil
	}
	if err := table(w, []string{"ID", "STATE", "SINCE", "FROM", "TO", "ATTEMPTS", "REASON"}, rows); err != nil {
		return err
	}
	more(w, p.Next)
	return nil
}

func messageTable(w io.Writer, v kv.MessageView) error {
	rows := [][]string{
		{"id", cell(v.ID, 0)}, {"state", cell(string(v.State), 0)}, {"reason", cell(v.Reason, 0)},
		{"from", cell(v.From, 0)}, {"to", cell(v.To, 0)}, {"from_full", cell(v.FromFull, 0)},
		{"content type", cell(v.ContentType, 0)},
		{"body", bodyCell(v, 0) + fmt.Sprintf(" (%d bytes, from %s)", v.BodyLen, cell(string(v.BodySource), 0))},
		{"received", ts(v.Received) + " (" + age(v.Age) + " ago)"},
		{"updated", ts(v.Updated)}, {"delivered", ts(v.Delivered)}, {"expires", ts(v.Expires)},
		{"attempts", fmt.Sprintf("%d (%d refused, %d uncertain resends)", v.Attempts, v.Refusals, v.UncertainResends)},
		{"last result", cell(v.LastResult, 0)}, {"in flight", cell(v.InFlight, 0)},
		{"freeswitch", fmt.Sprintf("%s core %s seq %d, profile %s, context %s", cell(v.Hostname, 0),
			cell(v.CoreUUID, 0), v.EventSeq, cell(v.Profile, 0), cell(v.Context, 0))},
	}
	if err := table(w, []string{"MESSAGE", ""}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	hist := make([][]string, 0, len(v.History))
	for _, h := range v.History {
		hist = append(hist, []string{ts(h.At), cell(h.Kind, 0), cell(string(h.State), 0), cell(h.Detail, 80)})
	}
	return table(w, []string{"AT", "EVENT", "STATE", "DETAIL"}, hist)
}

func presenceTable(w io.Writer, p kv.Page[presenceItem]) error {
	rows := make([][]string, 0, len(p.Items))
	for _, it := range p.Items {
		if it.Error != "" {
			rows = append(rows, []string{cell(it.AOR, 50), "?", "?", cell(it.Error, 60), "-", "-"})
			continue
		}
		rows = append(rows, []string{cell(it.AOR, 50), yesNo(it.Registered), string(it.Reach), cell(it.Evidence, 40),
			ts(it.EvidenceAt), strconv.Itoa(len(it.Registrations))})
	}
	if err := table(w, []string{"AOR", "REGISTERED", "REACH", "EVIDENCE", "EVIDENCE AT", "REGS"}, rows); err != nil {
		return err
	}
	more(w, p.Next)
	return nil
}

func presenceOneTable(w io.Writer, it presenceItem) error {
	rows := [][]string{
		{"aor", cell(it.AOR, 0)}, {"registered", yesNo(it.Registered)}, {"deliverable", yesNo(it.Deliverable)},
		{"reach", string(it.Reach)}, {"evidence", cell(it.Evidence, 0) + " at " + ts(it.EvidenceAt)},
		{"last alive", ts(it.LastAlive)},
	}
	if it.Error != "" {
		rows = append(rows, []string{"error", cell(it.Error, 0)})
	}
	if err := table(w, []string{"PRESENCE", ""}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	regs := make([][]string, 0, len(it.Registrations))
	for _, r := range it.Registrations {
		rtt := "-"
		if !r.LastPing.IsZero() {
			rtt = fmt.Sprintf("%.1fms", r.PingRTTms)
		}
		regs = append(regs, []string{cell(r.CallID, 24), cell(r.Contact, 50), cell(string(r.Reach), 0), age(r.ExpiresIn),
			cell(r.PingStatus, 0), rtt, strconv.Itoa(r.PingMisses), ts(r.LastPing), ts(r.LastAlive)})
	}
	if err := table(w, []string{"CALL-ID", "CONTACT", "REACH", "EXPIRES IN", "FS PING", "RTT", "MISSES", "LAST PING", "LAST ALIVE"}, regs); err != nil {
		return err
	}
	fmt.Fprintln(w)
	devs := make([][]string, 0, len(it.Devices))
	for _, d := range it.Devices {
		ended := "-"
		if !d.EndedAt.IsZero() {
			ended = ts(d.EndedAt)
		}
		devs = append(devs, []string{cell(d.Key, 50), yesNo(d.Registered), yesNo(d.Deliverable), cell(string(d.Reach), 0),
			cell(d.UserAgent, 24), ts(d.LastAlive), ended})
	}
	if err := table(w, []string{"DEVICE", "REGISTERED", "DELIVERABLE", "REACH", "USER-AGENT", "LAST ALIVE", "ENDED"}, devs); err != nil {
		return err
	}
	// The pinger's figures are persisted only with a change of reachability.
	fmt.Fprintln(w, "\nping figures are as of the last persisted change; the admin API shows them live")
	return nil
}

func outboxTable(w io.Writer, p kv.Page[outboxView]) error {
	rows := make([][]string, 0, len(p.Items))
	for _, v := range p.Items {
		rows = append(rows, []string{strconv.FormatUint(v.Seq, 10), cell(v.ID, 0), strconv.Itoa(v.EventSeq), cell(v.Kind, 0),
			ts(v.At), cell(string(v.Message.State), 0), cell(v.Detail, 60)})
	}
	if err := table(w, []string{"SEQ", "MESSAGE", "EVENT", "KIND", "AT", "STATE", "DETAIL"}, rows); err != nil {
		return err
	}
	more(w, p.Next)
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
