package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/termind/termind/internal/api"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/queue"
)

// subject export|erase answers access and erasure requests from the
// command line, with the same results as the API.
func (c *cli) subject(ctx context.Context, args []string) error {
	if len(args) < 1 || (args[0] != "export" && args[0] != "erase") {
		return fmt.Errorf("%w: subject export|erase ID --tenant T", errUsage)
	}
	verb := args[0]
	fs := newFlags("subject "+verb, c.stderr)
	tenantID := fs.String("tenant", "", "tenant id (tnt_…)")
	if err := parseFlags(fs, reorderFlags(args[1:])); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: subject %s ID --tenant T", errUsage, verb)
	}
	if *tenantID == "" {
		return fmt.Errorf("%w: --tenant is required", errUsage)
	}
	subjectID := fs.Arg(0)
	return c.withStore(ctx, func(cfg config.Config, s *store.Store) error {
		if verb == "export" {
			return c.subjectExport(ctx, s, *tenantID, subjectID)
		}
		return c.subjectErase(ctx, cfg, s, *tenantID, subjectID)
	})
}

func (c *cli) subjectExport(ctx context.Context, s *store.Store, tenantID, subjectID string) error {
	x, err := s.ExportSubject(ctx, tenantID, subjectID)
	if err != nil {
		return fmt.Errorf("export %s: %w", subjectID, err)
	}
	// Audited before the data is handed out, as in the API.
	if _, err := s.Audit(ctx, store.AuditEntry{TenantID: tenantID, Actor: "cli", Action: "subject.export",
		TargetKind: "subject", TargetID: subjectID, SubjectID: subjectID}); err != nil {
		return fmt.Errorf("export %s: audit: %w", subjectID, err)
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(api.ExportDocument(x, time.Now()))
}

func (c *cli) subjectErase(ctx context.Context, cfg config.Config, s *store.Store, tenantID, subjectID string) error {
	rep, err := s.EraseSubject(ctx, tenantID, subjectID, "cli", "")
	var held *store.HeldError
	if errors.As(err, &held) {
		return fmt.Errorf("erase %s: %w; nothing was erased (release it first: termind hold release %s --tenant %s)",
			subjectID, err, held.HoldID, tenantID)
	}
	if err != nil {
		return fmt.Errorf("erase %s: %w", subjectID, err)
	}
	fmt.Fprintf(c.stdout, "subject erased: %d rows deleted, %d connections being revoked\n", rep.Rows, len(rep.Revoking))
	if len(rep.Revoking) == 0 || cfg.EmbeddedQueue() {
		return nil
	}
	r, err := queue.OpenRedis(ctx, cfg.RedisURL, c.logger(cfg))
	if err != nil {
		return fmt.Errorf("erasure committed; calendar cleanup left to the sweeper: %w", err)
	}
	defer r.Close()
	q := queue.NewClient(r, cfg.QueueName)
	defer q.Close()
	for _, id := range rep.Revoking {
		if err := q.EnqueueRevoke(ctx, id); err != nil {
			return fmt.Errorf("erasure committed; calendar cleanup left to the sweeper: %w", err)
		}
	}
	return nil
}
