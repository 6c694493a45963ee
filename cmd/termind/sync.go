package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
	calsync "github.com/termind/termind/internal/sync"
	"github.com/termind/termind/internal/sync/caldavremote"
	"github.com/termind/termind/queue"
)

// sync CONNECTION [--full] [--wait] syncs one connection now. With --wait
// (or with the embedded queue, which lives inside `termind serve`) the
// pull runs in this process and its outcome is printed; otherwise it is
// handed to the workers through the queue.
func (c *cli) sync(ctx context.Context, args []string) error {
	fs := newFlags("sync", c.stderr)
	full := fs.Bool("full", false, "reconcile the whole window instead of an incremental pull")
	wait := fs.Bool("wait", false, "run the sync here and wait for its result")
	output := fs.String("output", "text", "text or json (the result of --wait)")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if err := checkOutput(*output); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: sync CONNECTION [--full] [--wait]", errUsage)
	}
	id := fs.Arg(0)
	return c.withStore(ctx, func(cfg config.Config, s *store.Store) error {
		conn, err := s.GetConnectionByID(ctx, id)
		if err != nil {
			return fmt.Errorf("sync %s: %w", id, err)
		}
		if conn.State != store.ConnActive {
			return fmt.Errorf("sync %s: the connection is %s", id, conn.State)
		}
		if !*wait && !cfg.EmbeddedQueue() {
			r, err := queue.OpenRedis(ctx, cfg.RedisURL, c.logger(cfg))
			if err != nil {
				return err
			}
			defer r.Close()
			q := queue.NewClient(r, cfg.QueueName)
			defer q.Close()
			if err := q.EnqueuePull(ctx, id, *full); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "sync of %s queued\n", id)
			return nil
		}
		log := c.logger(cfg)
		eng := calsync.New(calsync.Config{Store: s, Logger: log, Remotes: map[string]calsync.RemoteFactory{
			store.ProviderCalDAV: caldavremote.Factory(caldav.NewHTTPClient(caldav.Options{AllowPrivate: cfg.CalDAVAllowPrivate}), log),
		}})
		return c.runSync(ctx, eng, id, *full, *output)
	})
}

// runSync pulls while a line every few seconds on stderr shows that work
// is going on (a first import of a large calendar takes a while), then
// prints what the pull did. Lines, not a carriage-return counter, so that
// logs and CI output stay readable.
func (c *cli) runSync(ctx context.Context, eng *calsync.Engine, id string, full bool, output string) error {
	kind := "incremental"
	if full {
		kind = "full"
	}
	fmt.Fprintf(c.stderr, "syncing %s (%s): started\n", id, kind)
	start := time.Now()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(syncProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(c.stderr, "syncing %s (%s): still running after %.0fs\n", id, kind, time.Since(start).Seconds())
			}
		}
	}()
	res, err := eng.Pull(ctx, id, full)
	close(done)
	<-stopped
	fmt.Fprintf(c.stderr, "syncing %s (%s): finished in %.1fs\n", id, kind, time.Since(start).Seconds())
	if err != nil && !errors.Is(err, calsync.ErrMassDelete) {
		return fmt.Errorf("sync %s: %w", id, err)
	}
	if output == "json" {
		if err := writeJSON(c.stdout, map[string]any{"connection_id": id, "full": res.Full, "imported": res.Imported,
			"removed": res.Removed, "pushed": res.Pushed, "restored": res.Restored, "attention": res.Attention}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "imported %d, removed %d, pushed %d, restored %d (full: %v)\n",
			res.Imported, res.Removed, res.Pushed, res.Restored, res.Full)
		if res.Attention != "" {
			fmt.Fprintf(c.stdout, "needs attention: %s\n", res.Attention)
		}
	}
	if res.Attention != "" {
		return fmt.Errorf("sync %s: %s", id, res.Attention)
	}
	return nil
}

// syncProgressEvery is how often a running `sync --wait` says it is alive.
const syncProgressEvery = 2 * time.Second
