package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/workers"
)

// cli carries what every command needs: where to write and how to read the
// environment.
type cli struct {
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
}

func (c *cli) config() (config.Config, error) {
	return config.Load(c.lookup)
}

func (c *cli) logger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(c.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(c.stderr, opts))
}

// openStore opens and migrates the configured database and gives it the
// key that seals credentials. Every command migrates, so the order in which
// a newcomer runs them does not matter.
func (c *cli) openStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	s, _, err := openStore(ctx, cfg, c.lookup, c.logger(cfg))
	return s, err
}

func openStore(ctx context.Context, cfg config.Config, lookup func(string) (string, bool), log *slog.Logger) (*store.Store, *secrets.Keyring, error) {
	keys, err := secrets.Load(lookup, cfg.KeyFile, log)
	if err != nil {
		return nil, nil, err
	}
	s, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("TERMIND_DATABASE_URL: %w", err)
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	s.UseSealer(keys)
	return s, keys, nil
}

// withStore runs fn with the configuration and an open, migrated store.
func (c *cli) withStore(ctx context.Context, fn func(config.Config, *store.Store) error) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	s, err := c.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(cfg, s)
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func (c *cli) migrate(ctx context.Context, args []string) error {
	fs := newFlags("migrate", c.stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return c.withStore(ctx, func(_ config.Config, s *store.Store) error {
		fmt.Fprintf(c.stdout, "database %s is up to date\n", s.Dialect())
		return nil
	})
}

// tenant create NAME prints the new tenant's id and, as the last line, its
// admin API key (so scripts can take it with `tail -n1`).
func (c *cli) tenant(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "retention" {
		return c.tenantRetention(ctx, args[1:])
	}
	if len(args) >= 1 && args[0] == "offboard" {
		return c.tenantOffboard(ctx, args[1:])
	}
	if len(args) >= 1 && args[0] == "records" {
		return c.tenantRecords(ctx, args[1:])
	}
	if len(args) < 1 || args[0] != "create" {
		return fmt.Errorf("%w: tenant create NAME | tenant offboard ID | tenant records ID", errUsage)
	}
	fs := newFlags("tenant create", c.stderr)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	name := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if name == "" || len(name) > 200 {
		return fmt.Errorf("%w: NAME is required (1 to 200 characters)", errUsage)
	}
	return c.withStore(ctx, func(_ config.Config, s *store.Store) error {
		t, err := s.CreateTenant(ctx, name)
		if err != nil {
			return err
		}
		token, _, err := s.CreateAPIKey(ctx, t.ID, store.RoleAdmin)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "tenant %s created (%s)\nadmin API key (shown once):\n%s\n", t.ID, t.Name, token)
		return nil
	})
}

func (c *cli) apikey(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] != "create" {
		return fmt.Errorf("%w: apikey create --tenant ID --role ingest|admin", errUsage)
	}
	fs := newFlags("apikey create", c.stderr)
	tenantID := fs.String("tenant", "", "tenant id (tnt_…)")
	role := fs.String("role", store.RoleIngest, "ingest or admin")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *tenantID == "" {
		return fmt.Errorf("%w: --tenant is required", errUsage)
	}
	if *role != store.RoleIngest && *role != store.RoleAdmin {
		return fmt.Errorf("%w: --role must be ingest or admin, got %q", errUsage, *role)
	}
	return c.withStore(ctx, func(_ config.Config, s *store.Store) error {
		if _, err := s.GetTenant(ctx, *tenantID); err != nil {
			return fmt.Errorf("--tenant %s: %w", *tenantID, err)
		}
		token, _, err := s.CreateAPIKey(ctx, *tenantID, *role)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s API key for %s (shown once):\n%s\n", *role, *tenantID, token)
		return nil
	})
}

func (c *cli) purge(ctx context.Context, args []string) error {
	fs := newFlags("purge", c.stderr)
	dryRun := fs.Bool("dry-run", false, "count what would be deleted, delete nothing")
	output := fs.String("output", "text", "text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOutput(*output); err != nil {
		return err
	}
	return c.withStore(ctx, func(cfg config.Config, s *store.Store) error {
		// The CLI purges the store only; archived queue tasks are cleaned by
		// the daemon's hourly retention:purge, which holds the queue.
		var rep store.PurgeReport
		var err error
		if *dryRun {
			rep, err = workers.NewPurger(workers.PurgerConfig{Store: s, BatchSize: purgeBatch, Logger: c.logger(cfg)}).Purge(ctx, true)
		} else {
			rep, err = s.PurgeExpiredProgress(ctx, time.Now(), purgeBatch, func(step string, r store.PurgeReport) {
				switch step {
				case store.PurgeStepNotifications:
					fmt.Fprintf(c.stderr, "purge: batch %d: %d notifications deleted so far\n", r.Batches, r.Notifications)
				case store.PurgeStepAudit:
					fmt.Fprintf(c.stderr, "purge: %d expired audit entries deleted\n", r.Audit)
				case store.PurgeStepOAuthStates:
					fmt.Fprintf(c.stderr, "purge: %d expired OAuth states deleted\n", r.OAuthStates)
				}
			})
		}
		if err != nil {
			return err
		}
		if *output == "json" {
			return writeJSON(c.stdout, map[string]any{"dry_run": *dryRun, "notifications": rep.Notifications,
				"batches": rep.Batches, "audit": rep.Audit, "oauth_states": rep.OAuthStates})
		}
		verb := "deleted"
		if *dryRun {
			verb = "would delete"
		}
		fmt.Fprintf(c.stdout, "%s %d expired notifications in %d batches\n", verb, rep.Notifications, rep.Batches)
		c.printPurge(rep, verb)
		return nil
	})
}

// checkOutput validates an --output flag.
func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return fmt.Errorf("%w: --output must be text or json, got %q", errUsage, output)
	}
	return nil
}

// writeJSON prints v indented, for --output json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
