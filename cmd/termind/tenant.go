package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/termind/termind/internal/api"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/processing"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/queue"
)

// tenantOffboard stops all processing of a tenant (connections revoked,
// pending notifications cancelled, API keys suspended) and schedules the
// erasure of its personal data after the grace period; --cancel undoes it
// within that period.
func (c *cli) tenantOffboard(ctx context.Context, args []string) error {
	fs := newFlags("tenant offboard", c.stderr)
	graceText := fs.String("grace", "28d", "how long the offboarding can be cancelled: whole days (28d) from 1d to 365d")
	cancel := fs.Bool("cancel", false, "cancel the tenant's offboarding (keys work again; revoked connections stay revoked)")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: tenant offboard ID [--grace 28d] [--cancel]", errUsage)
	}
	tenantID := fs.Arg(0)
	grace, err := parseGrace(*graceText)
	if err != nil {
		return fmt.Errorf("%w: --grace %v", errUsage, err)
	}
	return c.withStore(ctx, func(cfg config.Config, s *store.Store) error {
		if *cancel {
			if err := s.CancelOffboarding(ctx, tenantID, "cli", "", time.Now()); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("tenant %s is not being offboarded, or its grace period is over", tenantID)
				}
				return err
			}
			fmt.Fprintf(c.stdout, "offboarding of %s cancelled: its API keys work again; revoked connections stay revoked\n", tenantID)
			return nil
		}
		rep, err := s.BeginOffboarding(ctx, tenantID, store.OffboardRequest{Grace: grace, Actor: "cli", Now: time.Now()})
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("tenant %s is already being offboarded", tenantID)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "tenant %s is offboarding: %d connections being revoked, %d notifications cancelled, %d API keys suspended\n",
			tenantID, len(rep.Revoking), rep.Notifications, rep.Keys)
		fmt.Fprintf(c.stdout, "personal data will be erased from %s; cancel before with: termind tenant offboard %s --cancel\n",
			rep.Offboarding.PurgeAt.Format(time.RFC3339), tenantID)
		if len(rep.Revoking) == 0 || cfg.EmbeddedQueue() {
			return nil
		}
		r, err := queue.OpenRedis(ctx, cfg.RedisURL, c.logger(cfg))
		if err != nil {
			return fmt.Errorf("offboarding committed; calendar cleanup left to the sweeper: %w", err)
		}
		defer r.Close()
		q := queue.NewClient(r, cfg.QueueName)
		defer q.Close()
		for _, id := range rep.Revoking {
			if err := q.EnqueueRevoke(ctx, id); err != nil {
				return fmt.Errorf("offboarding committed; calendar cleanup left to the sweeper: %w", err)
			}
		}
		return nil
	})
}

// parseGrace reads a grace period in whole days ("28d", or "28").
func parseGrace(v string) (time.Duration, error) {
	days, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
	if err != nil || days < 1 || days > 365 {
		return 0, fmt.Errorf("must be whole days from 1d to 365d, got %q", v)
	}
	return time.Duration(days) * 24 * time.Hour, nil
}

// tenantRecords prints the tenant's records of processing, built from
// this process's configuration (run it with the daemon's environment).
func (c *cli) tenantRecords(ctx context.Context, args []string) error {
	fs := newFlags("tenant records", c.stderr)
	format := fs.String("format", "markdown", "json or markdown")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: tenant records ID [--format json|markdown]", errUsage)
	}
	if *format != "json" && *format != "markdown" {
		return fmt.Errorf("%w: --format must be json or markdown, got %q", errUsage, *format)
	}
	tenantID := fs.Arg(0)
	return c.withStore(ctx, func(cfg config.Config, s *store.Store) error {
		t, err := s.GetTenant(ctx, tenantID)
		if err != nil {
			return fmt.Errorf("tenant %s: %w", tenantID, err)
		}
		conns, err := s.ListConnections(ctx, tenantID, "")
		if err != nil {
			return err
		}
		policy, err := s.GetRetentionPolicy(ctx, tenantID)
		if err != nil {
			return fmt.Errorf("tenant %s: %w", tenantID, err)
		}
		rec := api.ProcessingRecords(processing.SetupFrom(cfg), t, policy, conns, time.Now)
		if *format == "markdown" {
			_, err := fmt.Fprint(c.stdout, rec.Markdown())
			return err
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rec)
	})
}
