package kv

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The reach bucket is presence's persisted map: AOR → an opaque record (presence owns
// its encoding). It is a cache that a restart starts from; FreeSWITCH's registration
// list (resync) corrects it, so it holds one small record per AOR and nothing else.

var errEmptyAOR = errors.New("empty address")

func checkReachAOR(aor string) error {
	if aor == "" {
		return errEmptyAOR
	}
	if len(aor) > maxAORLen {
		return errAORTooLong
	}
	return nil
}

// PutReach stores rec as aor's reachability record, replacing any earlier one, and
// returns once the commit holding it is on disk.
func (s *Store) PutReach(ctx context.Context, aor string, rec []byte) error {
	if err := checkReachAOR(aor); err != nil {
		return fmt.Errorf("put reach: %w", err)
	}
	// bbolt keeps the slices it is given until the transaction ends; copy so that the
	// caller may reuse rec as soon as we return, even after a timeout.
	k, v := []byte(aor), append([]byte(nil), rec...)
	o := newOp(func(tx *bolt.Tx) error { return tx.Bucket(bucketReach).Put(k, v) }, nil)
	if err := s.submit(ctx, o); err != nil {
		return fmt.Errorf("put reach %q: %w", aor, err)
	}
	return nil
}

// DeleteReach removes aor's record; deleting a missing record is not an error.
func (s *Store) DeleteReach(ctx context.Context, aor string) error {
	if err := checkReachAOR(aor); err != nil {
		return fmt.Errorf("delete reach: %w", err)
	}
	k := []byte(aor)
	o := newOp(func(tx *bolt.Tx) error { return tx.Bucket(bucketReach).Delete(k) }, nil)
	if err := s.submit(ctx, o); err != nil {
		return fmt.Errorf("delete reach %q: %w", aor, err)
	}
	return nil
}

// LoadReach reads every reachability record (presence calls it once, at start).
func (s *Store) LoadReach() (map[string][]byte, error) {
	out := make(map[string][]byte)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReach)
		if b == nil {
			return fmt.Errorf("%w: no reach bucket", ErrCorrupt)
		}
		// Values are only valid inside the transaction: copy them out.
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load reach: %w", err)
	}
	return out, nil
}
