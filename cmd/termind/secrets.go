package main

import (
	"context"
	"fmt"

	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
)

// secrets rotate re-encrypts every sealed credential under the current key.
// Rotation: set the new key as TERMIND_SECRET_KEY and the old one in
// TERMIND_SECRET_KEYS_OLD, run this, then drop the old key.
func (c *cli) secrets(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] != "rotate" {
		return fmt.Errorf("%w: secrets rotate", errUsage)
	}
	fs := newFlags("secrets rotate", c.stderr)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	return c.withStore(ctx, func(_ config.Config, s *store.Store) error {
		// A line per batch: readable in logs and CI output, not only on a terminal.
		batch := 0
		n, err := s.RotateSecrets(ctx, func(done int) {
			batch++
			fmt.Fprintf(c.stderr, "secrets rotate: batch %d: %d values re-encrypted so far\n", batch, done)
		})
		if err != nil {
			return fmt.Errorf("secrets rotate: %w (%d values re-encrypted before the error; run it again)", err, n)
		}
		fmt.Fprintf(c.stdout, "%d values re-encrypted under the current key\n", n)
		return nil
	})
}
