// Package storetest gives tests a fresh, migrated store on each dialect.
//
// PostgreSQL tests need a server: TERMIND_TEST_POSTGRES_URL names it
// (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
// Each store gets its own database, dropped when the test ends. A missing
// server fails the test; it is never skipped.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/termind/termind/internal/store"
)

// DefaultPostgresURL is the server used when TERMIND_TEST_POSTGRES_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Dialects lists the dialects every store-backed test should run against.
func Dialects() []string { return []string{store.DialectSQLite, store.DialectPostgres} }

// New returns a fresh, migrated store, closed (and its database dropped)
// when the test ends.
func New(t testing.TB, dialect string) *store.Store {
	t.Helper()
	s := Open(t, URL(t, dialect))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate %s: %v", dialect, err)
	}
	return s
}

// Open opens an existing database URL (from URL) without migrating it;
// the store is closed when the test ends.
func Open(t testing.TB, dbURL string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("storetest: open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: close: %v", err)
		}
	})
	return s
}

// URL creates an empty database for the dialect and returns the URL that
// store.Open takes: a file in t.TempDir() for SQLite, a new database
// termind_test_<random> for PostgreSQL (dropped WITH (FORCE) at cleanup,
// after stores opened later have been closed).
func URL(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case store.DialectSQLite:
		return "sqlite:" + filepath.Join(t.TempDir(), "termind.db")
	case store.DialectPostgres:
		return postgresURL(t)
	default:
		t.Fatalf("storetest: unknown dialect %q", dialect)
		return ""
	}
}

func postgresURL(t testing.TB) string {
	t.Helper()
	server := os.Getenv("TERMIND_TEST_POSTGRES_URL")
	if server == "" {
		server = DefaultPostgresURL
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatalf("storetest: postgres URL %q: %v", server, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		t.Fatalf("storetest: PostgreSQL is required and not reachable at %s (set TERMIND_TEST_POSTGRES_URL): %v", redact(server), err)
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	name := "termind_test_" + hex.EncodeToString(raw[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("storetest: create database: %v", err)
	}
	// Registered before any store on it is opened, so it runs after they close.
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("storetest: postgres URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// redact hides a password in a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// NewTenant creates a tenant with default settings and an admin API key,
// returning the tenant and the key's token.
func NewTenant(t testing.TB, s *store.Store) (store.Tenant, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tn, err := s.CreateTenant(ctx, "Tenant "+t.Name())
	if err != nil {
		t.Fatalf("storetest: create tenant: %v", err)
	}
	token, _, err := s.CreateAPIKey(ctx, tn.ID, store.RoleAdmin)
	if err != nil {
		t.Fatalf("storetest: create api key: %v", err)
	}
	return tn, token
}

// Row is one database row as column name → value in text form (bytes as
// they are, other values as fmt prints them).
type Row map[string]string

// String renders the row deterministically, columns in name order.
func (r Row) String() string {
	cols := make([]string, 0, len(r))
	for c := range r {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(c + "=" + r[c])
	}
	return b.String()
}

// Dump reads every row of every table of the store's database, keyed by
// table name, so that tests can scan all of it (for plaintext secrets, or
// for rows a refused request must not have touched).
func Dump(t testing.TB, s *store.Store) map[string][]Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	if s.Dialect() == store.DialectPostgres {
		list = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
	}
	rows, err := s.DB().QueryContext(ctx, list)
	if err != nil {
		t.Fatalf("storetest: list tables: %v", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("storetest: list tables: %v", err)
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		t.Fatalf("storetest: list tables: %v", err)
	}
	if len(tables) == 0 {
		t.Fatal("storetest: the database has no tables")
	}
	out := make(map[string][]Row, len(tables))
	for _, table := range tables {
		out[table] = dumpTable(ctx, t, s.DB(), table)
	}
	return out
}

func dumpTable(ctx context.Context, t testing.TB, db *sql.DB, table string) []Row {
	t.Helper()
	rows, err := db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
	if err != nil {
		t.Fatalf("storetest: dump %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatalf("storetest: dump %s: %v", table, err)
	}
	var out []Row
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("storetest: dump %s: %v", table, err)
		}
		r := make(Row, len(cols))
		for i, c := range cols {
			switch v := vals[i].(type) {
			case nil:
				r[c] = "NULL"
			case []byte:
				r[c] = string(v)
			default:
				r[c] = fmt.Sprint(v)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("storetest: dump %s: %v", table, err)
	}
	return out
}
