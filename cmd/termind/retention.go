package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
)

// retentionFlags name the policy's windows on the command line, in the
// order they are shown.
var retentionFlags = []struct{ flag, field string }{
	{"notifications", store.PolicyNotifications},
	{"audit", store.PolicyAudit},
	{"imported-events", store.PolicyImportedEvents},
	{"broken-connections", store.PolicyBrokenConnections},
	{"inactive-subjects", store.PolicyInactiveSubjects},
}

// parseDays reads a window such as "30d" or "5y" (a year is 365 days).
func parseDays(v string) (time.Duration, error) {
	unit := store.Day
	num, ok := strings.CutSuffix(v, "d")
	if !ok {
		if num, ok = strings.CutSuffix(v, "y"); ok {
			unit = 365 * store.Day
		}
	}
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 || n > 100_000 {
		return 0, errors.New("must be a number of days such as 30d (or years such as 5y)")
	}
	return time.Duration(n) * unit, nil
}

func policyWindow(p *store.RetentionPolicy, field string) *time.Duration {
	switch field {
	case store.PolicyNotifications:
		return &p.Notifications
	case store.PolicyAudit:
		return &p.Audit
	case store.PolicyImportedEvents:
		return &p.ImportedEvents
	case store.PolicyBrokenConnections:
		return &p.BrokenConnections
	default:
		return &p.InactiveSubjects
	}
}

// tenantRetention is `tenant retention T [--notifications 30d] …`: without
// flags it shows the policy, with flags it changes the windows given
// (validated and audited like PUT /v1/tenant/retention) and shows the result.
func (c *cli) tenantRetention(ctx context.Context, args []string) error {
	fs := newFlags("tenant retention", c.stderr)
	given := map[string]*string{}
	for _, f := range retentionFlags {
		given[f.field] = fs.String(f.flag, "", "window in days (30d) or years (5y)")
	}
	action := fs.String("inactivity-action", "", "erase or anonymise")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: tenant retention TENANT [--notifications 30d] [--audit 365d] [--imported-events 30d] "+
			"[--broken-connections 30d] [--inactive-subjects 5y] [--inactivity-action erase|anonymise]", errUsage)
	}
	tenantID := fs.Arg(0)
	return c.withStore(ctx, func(_ config.Config, s *store.Store) error {
		p, err := s.GetRetentionPolicy(ctx, tenantID)
		if err != nil {
			return fmt.Errorf("tenant %s: %w", tenantID, err)
		}
		changed := false
		for _, f := range retentionFlags {
			v := *given[f.field]
			if v == "" {
				continue
			}
			d, err := parseDays(v)
			if err != nil {
				return fmt.Errorf("--%s: %w", f.flag, err)
			}
			*policyWindow(&p, f.field) = d
			changed = true
		}
		if *action != "" {
			p.InactivityAction = *action
			changed = true
		}
		if changed {
			p, err = s.SetRetentionPolicy(ctx, tenantID, p, "cli", "", time.Now())
			var fe *store.FieldError
			if errors.As(err, &fe) {
				return fmt.Errorf("--%s: %s", flagOf(fe.Field), fe.Rule)
			}
			if err != nil {
				return err
			}
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, f := range retentionFlags {
			fmt.Fprintf(tw, "%s\t%d days\n", f.flag, *policyWindow(&p, f.field)/store.Day)
		}
		fmt.Fprintf(tw, "inactivity-action\t%s\n", p.InactivityAction)
		return tw.Flush()
	})
}

func flagOf(field string) string {
	for _, f := range retentionFlags {
		if f.field == field {
			return f.flag
		}
	}
	return strings.ReplaceAll(field, "_", "-")
}

// hold add|list|release manages legal holds like /v1/holds.
func (c *cli) hold(ctx context.Context, args []string) error {
	const use = "hold add --tenant T [--subject ID] --reason TEXT --until DATE | hold list --tenant T [--output text|json] | hold release ID --tenant T"
	if len(args) < 1 {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	verb := args[0]
	fs := newFlags("hold "+verb, c.stderr)
	tenantID := fs.String("tenant", "", "tenant id (tnt_…)")
	var subject, reason, until, output *string
	switch verb {
	case "add":
		subject = fs.String("subject", "", "subject id; omitted: the whole tenant")
		reason = fs.String("reason", "", "why the records must be kept")
		until = fs.String("until", "", "end date: YYYY-MM-DD (UTC midnight) or RFC 3339")
	case "list":
		output = fs.String("output", "text", "text or json")
	case "release":
	default:
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	if err := parseFlags(fs, reorderFlags(args[1:])); err != nil {
		return err
	}
	if *tenantID == "" {
		return fmt.Errorf("%w: --tenant is required", errUsage)
	}
	if (verb == "release") != (fs.NArg() == 1) || fs.NArg() > 1 {
		return fmt.Errorf("%w: %s", errUsage, use)
	}
	return c.withStore(ctx, func(_ config.Config, s *store.Store) error {
		now := time.Now()
		switch verb {
		case "add":
			u, err := parseUntil(*until)
			if err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			h, err := s.PlaceHold(ctx, store.LegalHold{TenantID: *tenantID, SubjectID: *subject, Reason: *reason, Until: u, Actor: "cli"}, "", now)
			var fe *store.FieldError
			if errors.As(err, &fe) {
				return fmt.Errorf("--%s: %s", strings.TrimSuffix(fe.Field, "_id"), fe.Rule)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "hold %s placed until %s\n", h.ID, h.Until.Format(time.RFC3339))
			return nil
		case "release":
			h, err := s.ReleaseHold(ctx, *tenantID, fs.Arg(0), "cli", "", now)
			if err != nil {
				return fmt.Errorf("release %s: %w", fs.Arg(0), err)
			}
			fmt.Fprintf(c.stdout, "hold %s %s\n", h.ID, h.State(now))
			return nil
		default:
			holds, err := s.ListHolds(ctx, *tenantID)
			if err != nil {
				return err
			}
			return c.printHolds(holds, *output, now)
		}
	})
}

// parseUntil reads a date (midnight UTC) or an RFC 3339 time.
func parseUntil(v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errors.New("must be a date such as 2027-06-30 or an RFC 3339 time")
	}
	return t, nil
}

func (c *cli) printHolds(holds []store.LegalHold, output string, now time.Time) error {
	type row struct {
		ID, Scope, SubjectID, State, Until, Reason string
	}
	rows := make([]row, 0, len(holds))
	for _, h := range holds {
		scope := "subject"
		if h.SubjectID == "" {
			scope = "tenant"
		}
		rows = append(rows, row{h.ID, scope, h.SubjectID, h.State(now), h.Until.Format(time.RFC3339), h.Reason})
	}
	switch output {
	case "json":
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"items": rows})
	case "text":
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSCOPE\tSUBJECT\tSTATE\tUNTIL\tREASON")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Scope, r.SubjectID, r.State, r.Until, r.Reason)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("%w: --output must be text or json", errUsage)
	}
}

// printPurge writes what a purge did beyond notifications.
func (c *cli) printPurge(rep store.PurgeReport, verb string) {
	fmt.Fprintf(c.stdout, "%s %d audit entries, %d imported events; %d broken connections revoked; %d inactive subjects erased, %d anonymised\n",
		verb, rep.Audit, rep.ImportedEvents, rep.ConnectionsRevoked, rep.SubjectsErased, rep.SubjectsAnonymised)
	fmt.Fprintf(c.stdout, "held by legal holds: %d notifications, %d audit entries, %d imported events, %d connections, %d subjects; %d holds expired\n",
		rep.Held.Notifications, rep.Held.Audit, rep.Held.ImportedEvents, rep.Held.Connections, rep.Held.Subjects, rep.HoldsExpired)
}
