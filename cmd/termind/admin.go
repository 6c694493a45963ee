package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hibiken/asynqmon"

	"github.com/termind/termind/internal/admin"
)

// withAdmin serves the operator pages under /admin/ (with the asynq
// dashboard at /admin/queues) and everything else from next, the API.
func (d *daemon) withAdmin(next http.Handler) (http.Handler, error) {
	queues := asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: d.redis.ConnOpt()})
	d.closers = append(d.closers, queues.Close)
	pages, err := admin.New(admin.Config{
		PublicURL:     d.cfg.PublicURL,
		PurgeInterval: d.cfg.PurgeInterval,
	}, admin.Deps{
		Store:  d.store,
		Queue:  d.queue,
		Queues: queues,
		Logger: d.log,
		Now:    time.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("admin pages: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin", pages)
	mux.Handle(admin.Prefix, pages)
	mux.Handle("/", next)
	return mux, nil
}
