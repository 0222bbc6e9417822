package presence

import (
	"context"
	"encoding/json"
	"fmt"
)

// recordVersion tags the JSON in the store so that a later layout can be told apart.
const recordVersion = 1

// record is one AOR's entry in the store's reach bucket.
type record struct {
	V int `json:"v"`
	State
}

func encodeState(st *State) ([]byte, error) {
	return json.Marshal(record{V: recordVersion, State: *st})
}

func decodeState(aor string, b []byte) (State, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return State{}, err
	}
	if r.V != recordVersion {
		return State{}, fmt.Errorf("record version %d, this sipsilo reads %d", r.V, recordVersion)
	}
	if r.AOR != aor {
		return State{}, fmt.Errorf("record names %q", r.AOR)
	}
	if r.Reach == "" {
		r.Reach = Unknown
	}
	// Records written before device keys: compute them as a REGISTER would have.
	for i := range r.Registrations {
		r.Registrations[i].Device = keyOf(&r.Registrations[i])
	}
	for i := range r.Ended {
		r.Ended[i].Device = keyOf(&r.Ended[i])
	}
	return r.State, nil
}

// persist writes st, or deletes the AOR's record once it has no registration and no
// remembered device left:
// such an AOR holds nothing a restart needs (the events that could still race with it
// belong to the connection that is gone by then), and keeping it would grow the file
// with every AOR ever seen. Its ordering mark stays in memory. Called with wmu held.
func (m *Map) persist(ctx context.Context, st *State) error {
	if len(st.Registrations) == 0 && len(st.Ended) == 0 {
		if !m.stored[st.AOR] {
			return nil
		}
		if err := m.store.DeleteReach(ctx, st.AOR); err != nil {
			return fmt.Errorf("presence: %w", err)
		}
		delete(m.stored, st.AOR)
		return nil
	}
	rec, err := encodeState(st)
	if err != nil {
		return fmt.Errorf("presence: encode %q: %w", st.AOR, err)
	}
	if err := m.store.PutReach(ctx, st.AOR, rec); err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	m.stored[st.AOR] = true
	return nil
}

func (m *Map) load() error {
	recs, err := m.store.LoadReach()
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	for aor, b := range recs {
		// Marked stored even when unreadable, so that the next change replaces it.
		m.stored[aor] = true
		st, err := decodeState(aor, b)
		if err != nil {
			m.log.Warn("presence: skipping unreadable record", "bytes", len(b), "err", err)
			continue
		}
		m.aors[aor] = &st
	}
	m.log.Debug("presence: loaded", "aors", len(m.aors))
	return nil
}
