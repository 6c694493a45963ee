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
	"net/url"
	"os"
	"path/filepath"
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
