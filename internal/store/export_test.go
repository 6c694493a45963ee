package store

import "context"

// MigrateUpTo applies the migrations up to version upTo only, to test a
// later migration on top of data written under an older schema.
func MigrateUpTo(ctx context.Context, s *Store, upTo int64) error { return s.migrateUpTo(ctx, upTo) }
