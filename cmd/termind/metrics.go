package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/termind/termind/internal/api"
	"github.com/termind/termind/internal/store"
)

// metricsHandler exposes this process's registry. A collector that fails
// (store or Redis away) drops its own series, not the whole scrape.
func (d *daemon) metricsHandler() http.Handler {
	return promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	})
}

// serveMetrics serves /metrics alone on TERMIND_METRICS_LISTEN, for
// processes without the api role: their counters (sends, syncs, purges)
// live in the worker process. The same token or loopback rule applies.
func (d *daemon) serveMetrics(ctx context.Context, wg *sync.WaitGroup, fail func(error)) error {
	ln, err := net.Listen("tcp", d.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("TERMIND_METRICS_LISTEN: %w", err)
	}
	h := api.New(api.Config{MetricsToken: d.cfg.MetricsToken}, api.Deps{
		Store: metricsOnlyStore{}, Metrics: d.metricsHandler(), Logger: d.log, Ready: d.ready})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fail(fmt.Errorf("metrics http: %w", err))
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = srv.Shutdown(shutdownCtx)
	}()
	d.log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}

// metricsOnlyStore refuses every API key, so that the metrics listener of
// a worker answers nothing but /metrics, /healthz, /readyz and the
// OpenAPI document.
type metricsOnlyStore struct{ api.Store }

func (metricsOnlyStore) LookupAPIKey(context.Context, string) (store.APIKey, error) {
	return store.APIKey{}, store.ErrNotFound
}
