package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "modernc.org/sqlite"             // registers driver "sqlite"
)

// Dialect names returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Store is a handle on the database. Safe for concurrent use.
type Store struct {
	dialect string
	// db takes every write. On SQLite it holds a single connection so that
	// writers queue in Go instead of failing with SQLITE_BUSY; transactions
	// there start with BEGIN IMMEDIATE (DSN _txlock) so a read never has to be
	// upgraded to a write lock mid-transaction.
	db *sql.DB
	// read serves plain reads. On SQLite it is a separate pool (WAL lets
	// readers run beside the writer); on PostgreSQL it is db itself.
	read *sql.DB
	// fenceDB holds the PostgreSQL transactions of calendar write fences
	// (see CalendarWrite). A fence lives as long as a whole pull or push,
	// and the store calls made inside it need connections of their own: on
	// the shared pool, enough concurrent syncs would hold every connection
	// and wait for one forever. Its size bounds the syncs of a process.
	fenceDB *sql.DB

	sealMu sync.RWMutex
	sealer Sealer // set by UseSealer; nil until then

	// fences are the in-process calendar write fences of SQLite, one per
	// connection id while anyone holds or waits for it (see CalendarWrite);
	// lockDir holds their lock files, which fence other processes on the
	// same database file.
	lockDir string
	fenceMu sync.Mutex
	fences  map[string]*fence
}

// sqlitePragmas are applied by the driver to every pooled connection.
// The busy timeout is long because a CLI command and the daemon share the
// file: a write should wait for the other process's transaction (which
// can take seconds on a loaded machine) rather than fail.
var sqlitePragmas = []string{
	"busy_timeout(30000)",
	"journal_mode(WAL)",
	"synchronous(NORMAL)",
	"foreign_keys(1)",
}

// Open connects to the database named by url: "" or a file path or
// "sqlite:PATH" → SQLite (WAL) at that path ("" → ./termind.db);
// "postgres://…" or "postgresql://…" → PostgreSQL through pgx v5.
// Open does not migrate; call Migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return openPostgres(ctx, url)
	}
	path := strings.TrimPrefix(url, "sqlite:")
	if path == "" {
		path = "termind.db"
	}
	return openSQLite(ctx, path)
}

// maxConcurrentFences bounds the calendar syncs one process runs at once
// on PostgreSQL; more wait for a fence connection without holding one of
// the shared pool.
const maxConcurrentFences = 12

func openPostgres(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// Bounded so that many worker processes stay well below max_connections.
	// Idle connections are kept up to the same bound: closing a connection
	// only to open another one a millisecond later costs PostgreSQL a new
	// backend process each time.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	fenceDB, err := sql.Open("pgx", url)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	fenceDB.SetMaxOpenConns(maxConcurrentFences)
	fenceDB.SetMaxIdleConns(4)
	fenceDB.SetConnMaxIdleTime(5 * time.Minute)
	return &Store{dialect: DialectPostgres, db: db, read: db, fenceDB: fenceDB}, nil
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite: path %q must not contain '?' or '#'", path)
	}
	q := make([]string, 0, len(sqlitePragmas)+2)
	for _, p := range sqlitePragmas {
		q = append(q, "_pragma="+p)
	}
	writer, err := sql.Open("sqlite", path+"?"+strings.Join(append(q, "_txlock=immediate"), "&"))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// The writer connects first: it creates the file and switches it to WAL
	// before any reader looks at it.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	reader, err := sql.Open("sqlite", path+"?"+strings.Join(append(q, "_pragma=query_only(1)"), "&"))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	reader.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	reader.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	return &Store{dialect: DialectSQLite, db: writer, read: reader, lockDir: path + ".locks"}, nil
}

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Ping checks the database is reachable (readiness).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// DB exposes the database handle to tests and tools that check raw rows.
// On SQLite it is the single writer connection: do not hold a transaction
// or an open *sql.Rows on it while calling other Store methods.
func (s *Store) DB() *sql.DB { return s.db }

// Close releases the connections.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.read != s.db {
		err = errors.Join(err, s.read.Close())
	}
	if s.fenceDB != nil {
		err = errors.Join(err, s.fenceDB.Close())
	}
	return err
}

// rebind turns the '?' placeholders every query is written with into
// PostgreSQL's $1..$n. Queries never contain '?' inside string literals.
func (s *Store) rebind(query string) string {
	if s.dialect != DialectPostgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// forUpdate locks the selected rows on PostgreSQL. SQLite has no row locks
// and needs none: its write transactions are serialised (BEGIN IMMEDIATE).
func (s *Store) forUpdate() string {
	if s.dialect == DialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

// inTx runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// rowScanner is satisfied by *sql.Row and *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// newID returns a prefixed, time-ordered, unguessable id such as
// "ntf_0190f1c4e5b27c3a9d2e4f6a8b0c1d2e".
func newID(prefix string) string {
	u, err := uuid.NewV7()
	if err != nil {
		// NewV7 only fails when the system random source does; nothing
		// sensible can continue without it.
		panic(fmt.Sprintf("store: new id: %v", err))
	}
	return prefix + hex.EncodeToString(u[:])
}

// ms stores a time as Unix milliseconds; the zero time is stored as 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms, in UTC.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// truncMS drops what the database cannot keep, so a returned struct equals
// the row read back later.
func truncMS(t time.Time) time.Time { return fromMS(ms(t)) }

// dayOf is the UTC calendar day that delivery_stats counts a row under.
func dayOf(msec int64) string {
	return time.UnixMilli(msec).UTC().Format("2006-01-02")
}

// queryAll runs a query and scans every row with scan, in order.
func queryAll[T any](ctx context.Context, q querier, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// queryStrings runs a query whose rows hold one text column (ids, mostly).
func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	return queryAll(ctx, q, func(r rowScanner) (string, error) {
		var v string
		err := r.Scan(&v)
		return v, err
	}, query, args...)
}
