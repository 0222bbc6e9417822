package mirror

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Column sizes, in bytes as far as Go is concerned: strings are cut to
// these (on a UTF-8 boundary) before they are sent, so a long value never
// fails a batch. VARCHAR(n) counts characters, so n bytes always fit.
const (
	idLen          = 26 // a ULID
	addrLen        = 255
	fromFullLen    = 1024
	contentTypeLen = 255
	stateLen       = 16
	resultLen      = 1024
	kindLen        = 16
	detailLen      = 1024
	deviceLen      = 256       // kv's bound on a device key
	maxBody        = 1<<24 - 1 // MEDIUMBLOB
)

// migrations are applied in order, once each; schema_version records the
// last one applied. Statements are idempotent too (IF NOT EXISTS), because
// MySQL commits DDL implicitly: a crash between a statement and the
// version row must not wedge the next start.
var migrations = [][]string{
	1: {
		// Addresses compare byte for byte (utf8mb4_bin), like kv's keys.
		// The id is ASCII to keep the primary key, and with it every
		// secondary index entry, small.
		`CREATE TABLE IF NOT EXISTS messages (
			id             CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			sender         VARCHAR(255) NOT NULL,
			recipient      VARCHAR(255) NOT NULL,
			from_full      VARCHAR(1024) NOT NULL,
			content_type   VARCHAR(255) NOT NULL,
			body           MEDIUMBLOB NULL,
			received       DATETIME(6) NOT NULL,
			delivered      DATETIME(6) NULL,
			state          VARCHAR(16) NOT NULL,
			attempts       INT NOT NULL,
			last_result    VARCHAR(1024) NOT NULL,
			updated        DATETIME(6) NOT NULL,
			last_event_seq INT NOT NULL,
			PRIMARY KEY (id),
			KEY messages_recipient_received (recipient, received),
			KEY messages_sender_received (sender, received)
		) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		`CREATE TABLE IF NOT EXISTS message_events (
			message_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			seq        INT NOT NULL,
			kind       VARCHAR(16) NOT NULL,
			state      VARCHAR(16) NOT NULL,
			at         DATETIME(6) NOT NULL,
			detail     VARCHAR(1024) NOT NULL,
			PRIMARY KEY (message_id, seq)
		) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	},
	2: {
		// The device whose copy of the message changed (docs/decisions.md §29);
		// empty for a change of the message as a whole. MySQL has no ADD
		// COLUMN IF NOT EXISTS: a rerun after a crash meets the column, and
		// migrate takes that error as done.
		`ALTER TABLE message_events ADD COLUMN device VARCHAR(256) NOT NULL DEFAULT '' AFTER kind`,
	},
}

// errDupColumn is MySQL's and MariaDB's ER_DUP_FIELDNAME: a migration that
// adds a column met it already there.
const errDupColumn = 1060

// latestVersion is the schema version this package migrates to.
var latestVersion = len(migrations) - 1

// migrateLock serialises migrations of several sipsilo processes sharing
// one database.
const migrateLock = "sipsilo.mirror.migrate"

// migrate brings the schema up to latestVersion. A database migrated by a
// newer sipsilo is left alone.
func migrate(ctx context.Context, db *sql.DB) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", migrateLock, 30).Scan(&got); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if got.Int64 != 1 {
		return errors.New("lock: another process holds " + migrateLock)
	}
	defer func() {
		// A fresh context: the lock must go even if ctx has ended.
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, rerr := conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", migrateLock); rerr != nil && err == nil {
			err = fmt.Errorf("unlock: %w", rerr)
		}
	}()

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INT NOT NULL PRIMARY KEY,
		applied DATETIME(6) NOT NULL
	) ENGINE=InnoDB`); err != nil {
		return err
	}
	var current sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_version").Scan(&current); err != nil {
		return err
	}
	for v := int(current.Int64) + 1; v <= latestVersion; v++ {
		for _, stmt := range migrations[v] {
			var myErr *mysql.MySQLError
			if _, err := conn.ExecContext(ctx, stmt); err != nil && !(errors.As(err, &myErr) && myErr.Number == errDupColumn) {
				return fmt.Errorf("version %d: %w", v, err)
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO schema_version (version, applied) VALUES (?, ?)",
			v, time.Now().UTC()); err != nil {
			return fmt.Errorf("version %d: %w", v, err)
		}
	}
	return nil
}
