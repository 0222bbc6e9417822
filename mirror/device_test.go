package mirror

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sipsilo/sipsilo/internal/mariadbtest"
)

// Ensure a database of schema version 1 gains message_events.device, its old
// events keep an empty one, a rerun of the migration (a crash before its
// version row) is harmless, and per-device events land with their device.
func TestDeviceColumnMigratesAndCarriesCopies(t *testing.T) {
	t.Parallel()
	srv := mariadbtest.Start(t)
	connector, err := mysql.NewConnector(quietDSN(srv))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx := context.Background()
	for _, stmt := range append(migrations[1],
		`CREATE TABLE schema_version (version INT NOT NULL PRIMARY KEY, applied DATETIME(6) NOT NULL) ENGINE=InnoDB`,
		`INSERT INTO schema_version VALUES (1, NOW(6))`,
		`INSERT INTO message_events VALUES ('`+msgID(1)+`', 1, 'received', 'queued', NOW(6), '')`) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *Mirror {
		m, err := Open(ctx, Config{DSN: quietDSN(srv), Interval: 5 * time.Millisecond,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	open().Close()
	if _, err := db.ExecContext(ctx, "DELETE FROM schema_version WHERE version = 2"); err != nil {
		t.Fatal(err)
	}
	m := open() // the column is there already: migrating again must pass
	defer m.Close()

	var dev string
	if err := db.QueryRowContext(ctx, "SELECT device FROM message_events WHERE message_id = ?", msgID(1)).Scan(&dev); err != nil || dev != "" {
		t.Fatalf("old event's device %q %v", dev, err)
	}
	recs := []Record{makeRecord(2, 0, 1), makeRecord(2, 1, 2), makeRecord(2, 2, 3)}
	recs[1].Kind, recs[1].Device = "delivered", "instance:<urn:uuid:a>"
	recs[2].Kind, recs[2].Device = "attempt", "contact:sip:1001@127.0.0.1:5062"
	drain(t, m, newOutbox(recs))
	_, events, err := m.Message(ctx, msgID(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || events[0].Device != "" || events[1].Device != recs[1].Device || events[2].Device != recs[2].Device {
		t.Fatalf("events %+v", events)
	}
}
