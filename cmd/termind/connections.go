package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/queue"
)

// connections list|revoke: operators look at and revoke calendar
// connections without going through the API.
func (c *cli) connections(ctx context.Context, args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("%w: connections list|revoke", errUsage)
	}
	switch args[0] {
	case "list":
		return c.connectionsList(ctx, args[1:])
	case "revoke":
		return c.connectionsRevoke(ctx, args[1:])
	}
	return fmt.Errorf("%w: connections list|revoke, got %q", errUsage, args[0])
}

func (c *cli) connectionsList(ctx context.Context, args []string) error {
	fs := newFlags("connections list", c.stderr)
	tenantID := fs.String("tenant", "", "tenant id (tnt_…)")
	subjectID := fs.String("subject", "", "only this subject's connections")
	output := fs.String("output", "text", "text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tenantID == "" {
		return fmt.Errorf("%w: --tenant is required", errUsage)
	}
	if err := checkOutput(*output); err != nil {
		return err
	}
	return c.withStore(ctx, func(_ config.Config, s *store.Store) error {
		conns, err := s.ListConnections(ctx, *tenantID, *subjectID)
		if err != nil {
			return err
		}
		if *output == "json" {
			items := make([]connectionLine, 0, len(conns))
			for _, cn := range conns {
				items = append(items, newConnectionLine(cn))
			}
			return writeJSON(c.stdout, map[string]any{"items": items})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSUBJECT\tPROVIDER\tSTATE\tPRIVACY\tDIRECTION\tLAST SYNC")
		for _, cn := range conns {
			l := newConnectionLine(cn)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.SubjectID, l.Provider, l.State, l.Privacy, l.Direction, orDash(l.LastSyncAt))
		}
		return tw.Flush()
	})
}

// connectionLine is what the CLI shows of a connection: never credentials.
type connectionLine struct {
	ID          string `json:"id"`
	SubjectID   string `json:"subject_id"`
	Provider    string `json:"provider"`
	State       string `json:"state"`
	StateReason string `json:"state_reason,omitempty"`
	Privacy     string `json:"privacy"`
	Direction   string `json:"direction"`
	LastSyncAt  string `json:"last_sync_at,omitempty"`
	LastError   string `json:"last_error,omitempty"`
}

func newConnectionLine(cn store.Connection) connectionLine {
	l := connectionLine{ID: cn.ID, SubjectID: cn.SubjectID, Provider: cn.Provider, State: cn.State,
		StateReason: cn.StateReason, Privacy: cn.Privacy, Direction: cn.Direction, LastError: cn.LastError}
	if !cn.LastSyncAt.IsZero() {
		l.LastSyncAt = cn.LastSyncAt.UTC().Format(time.RFC3339)
	}
	return l
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// connections revoke ID commits the revocation (from then on no worker
// touches the calendar) and hands the cleanup to the queue. With the
// embedded queue, which lives inside `termind serve`, the daemon's outbox
// sweeper picks the cleanup up instead.
func (c *cli) connectionsRevoke(ctx context.Context, args []string) error {
	fs := newFlags("connections revoke", c.stderr)
	tenantID := fs.String("tenant", "", "tenant id (tnt_…)")
	reason := fs.String("reason", "", "why the connection is revoked (recorded in the audit log)")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: connections revoke ID --tenant T --reason TEXT", errUsage)
	}
	id := fs.Arg(0)
	if *tenantID == "" {
		return fmt.Errorf("%w: --tenant is required", errUsage)
	}
	if strings.TrimSpace(*reason) == "" {
		return fmt.Errorf("%w: --reason is required", errUsage)
	}
	return c.withStore(ctx, func(cfg config.Config, s *store.Store) error {
		cn, err := s.BeginRevocation(ctx, *tenantID, id, store.Revocation{Actor: "cli", Reason: "admin: " + *reason})
		if err != nil {
			return fmt.Errorf("revoke %s: %w", id, err)
		}
		fmt.Fprintf(c.stdout, "connection %s is %s\n", cn.ID, cn.State)
		if cn.State != store.ConnRevoking || cfg.EmbeddedQueue() {
			return nil
		}
		r, err := queue.OpenRedis(ctx, cfg.RedisURL, c.logger(cfg))
		if err != nil {
			return fmt.Errorf("revocation committed; cleanup left to the sweeper: %w", err)
		}
		defer r.Close()
		q := queue.NewClient(r, cfg.QueueName)
		defer q.Close()
		if err := q.EnqueueRevoke(ctx, cn.ID); err != nil {
			return fmt.Errorf("revocation committed; cleanup left to the sweeper: %w", err)
		}
		fmt.Fprintln(c.stdout, "cleanup enqueued")
		return nil
	})
}

// reorderFlags moves flags before positional arguments so that both
// `revoke ID --reason x` and `revoke --reason x ID` work (package flag stops
// at the first positional argument).
func reorderFlags(args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		if !strings.Contains(a, "=") && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, positional...)
}
