package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/connectors/mail"
	"github.com/termind/termind/connectors/sms"
	"github.com/termind/termind/internal/api"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/metrics"
	"github.com/termind/termind/internal/processing"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	calsync "github.com/termind/termind/internal/sync"
	"github.com/termind/termind/internal/sync/caldavremote"
	"github.com/termind/termind/internal/sync/googleremote"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/templates"
	"github.com/termind/termind/workers"
)

// purgeBatch is the number of rows one purge transaction deletes.
const purgeBatch = 10_000

// Roles a process can take; `serve` takes all three unless told otherwise.
const (
	roleAPI       = "api"
	roleWorker    = "worker"
	roleScheduler = "scheduler"
)

var allRoles = []string{roleAPI, roleWorker, roleScheduler}

func parseRoles(s string) ([]string, error) {
	var roles []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(allRoles, r) {
			return nil, fmt.Errorf("%w: --roles: unknown role %q (allowed: %s)", errUsage, r, strings.Join(allRoles, ", "))
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

// mailSender and smsSender hold either a provider (SMTP, Twilio) or the
// file delivery of the embedded default; the daemon closes what needs it
// through its closers.
type mailSender interface {
	Send(ctx context.Context, m mail.Message) (string, error)
}

type smsSender interface {
	Send(ctx context.Context, m sms.Message) (string, error)
}

// daemon holds the concrete parts of a running termind.
type daemon struct {
	cfg      config.Config
	log      *slog.Logger
	store    *store.Store
	redis    *queue.Redis
	queue    *queue.Client
	renderer *templates.Renderer
	mail     mailSender
	sms      smsSender
	keys     *secrets.Keyring
	// caldavHTTP is the SSRF-safe client every CalDAV request goes through.
	caldavHTTP *http.Client
	google     *google.OAuth // nil when Google is not configured
	// googlePace spaces Calendar API requests per user, across all of
	// this process's syncs.
	googlePace *google.Pacer
	closers    []func() error
	// registry holds this process's metrics, served at /metrics.
	registry *prometheus.Registry
	metrics  *metrics.Metrics
}

// openDaemon opens the configured database and connects everything else
// the configuration names. Nothing runs yet.
func openDaemon(ctx context.Context, cfg config.Config, lookup func(string) (string, bool), log *slog.Logger) (*daemon, error) {
	s, keys, err := openStore(ctx, cfg, lookup, log)
	if err != nil {
		return nil, err
	}
	d, err := assembleDaemon(ctx, cfg, log, s, keys)
	if err != nil {
		s.Close()
		return nil, err
	}
	d.closers = append([]func() error{s.Close}, d.closers...)
	return d, nil
}

// assembleDaemon connects the queue and the providers around an open,
// migrated store (which the caller keeps ownership of).
func assembleDaemon(ctx context.Context, cfg config.Config, log *slog.Logger, s *store.Store, keys *secrets.Keyring) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log, store: s, keys: keys}
	d.registry = prometheus.NewRegistry()
	d.metrics = metrics.New(d.registry)
	metrics.RegisterConnections(d.registry, s, log)
	d.caldavHTTP = caldav.NewHTTPClient(caldav.Options{AllowPrivate: cfg.CalDAVAllowPrivate})
	d.caldavHTTP.Transport = d.metrics.Transport(store.ProviderCalDAV, d.caldavHTTP.Transport)
	if cfg.GoogleConfigured() {
		d.google, err = google.NewOAuth(google.OAuthConfig{
			ClientID:     cfg.GoogleClientID,
			ClientSecret: cfg.GoogleClientSecret,
			RedirectURL:  cfg.PublicURL + "/oauth/google/callback",
			AuthURL:      cfg.GoogleAuthURL,
			TokenURL:     cfg.GoogleTokenURL,
			RevokeURL:    cfg.GoogleRevokeURL,
			HTTPClient:   &http.Client{Timeout: 30 * time.Second, Transport: d.metrics.Transport(store.ProviderGoogle, nil)},
		})
		if err != nil {
			return nil, err
		}
		d.googlePace = google.NewPacer(float64(cfg.GooglePace), 2*cfg.GooglePace)
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()

	d.redis, err = queue.OpenRedis(ctx, cfg.RedisURL, log)
	if err != nil {
		return nil, fmt.Errorf("TERMIND_REDIS_URL: %w", err)
	}
	d.closers = append(d.closers, d.redis.Close)
	d.queue = queue.NewClient(d.redis, cfg.QueueName)
	d.closers = append(d.closers, d.queue.Close)
	// asynq's collector reports every queue's size and latency at scrape time.
	inspector := asynq.NewInspector(d.redis.ConnOpt())
	d.closers = append(d.closers, inspector.Close)
	d.registry.MustRegister(asynqmetrics.NewQueueMetricsCollector(inspector))

	d.renderer, err = templates.New(cfg.TemplatesDir)
	if err != nil {
		return nil, fmt.Errorf("TERMIND_TEMPLATES_DIR: %w", err)
	}

	if cfg.SMTPURL != "" {
		m, err := mail.NewSMTP(mail.SMTPConfig{URL: cfg.SMTPURL, Pool: cfg.Concurrency, Timeout: 30 * time.Second})
		if err != nil {
			return nil, err
		}
		d.mail = m
		d.closers = append(d.closers, m.Close)
	} else {
		dir := filepath.Join(cfg.DeliveriesDir, "mail")
		m, err := mail.NewDir(dir)
		if err != nil {
			return nil, fmt.Errorf("TERMIND_DELIVERIES_DIR: %w", err)
		}
		d.mail = m
		log.Warn("no TERMIND_SMTP_URL: mail is written to files, not sent", "dir", dir)
	}

	if cfg.SMSConfigured() {
		t, err := sms.NewTwilio(sms.TwilioConfig{
			AccountSID:          cfg.TwilioAccountSID,
			AuthToken:           cfg.TwilioAuthToken,
			From:                cfg.TwilioFrom,
			MessagingServiceSID: cfg.TwilioMessagingServiceSID,
			APIURL:              cfg.TwilioAPIURL,
			Timeout:             30 * time.Second,
		})
		if err != nil {
			return nil, err
		}
		d.sms = t
	} else {
		dir := filepath.Join(cfg.DeliveriesDir, "sms")
		t, err := sms.NewDir(dir)
		if err != nil {
			return nil, fmt.Errorf("TERMIND_DELIVERIES_DIR: %w", err)
		}
		d.sms = t
		log.Warn("no Twilio credentials: SMS are written to files, not sent", "dir", dir)
	}
	return d, nil
}

func (d *daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i](); err != nil {
			d.log.Warn("close", "err", err)
		}
	}
	d.closers = nil
}

// ready is the readiness check: the store and the queue answer.
func (d *daemon) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := d.store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := d.redis.Ping(ctx); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

func (d *daemon) handler() http.Handler {
	deps := api.Deps{
		Store:    d.store,
		Renderer: d.renderer,
		Queue:    d.queue,
		CalDAV:   api.NewCalDAVConnector(d.caldavHTTP),
		Logger:   d.log,
		Now:      time.Now,
		Ready:    d.ready,
		Metrics:  d.metricsHandler(),
		Observer: d.metrics,
	}
	if d.google != nil {
		deps.Google = d.google
	}
	return api.New(api.Config{
		PublicURL:       d.cfg.PublicURL,
		TwilioAuthToken: d.cfg.TwilioAuthToken,
		OAuthStateKey:   d.keys.SigningKey("oauth-state"),
		PushDebounce:    d.cfg.GooglePushDebounce,
		MetricsToken:    d.cfg.MetricsToken,
		Processing:      processing.SetupFrom(d.cfg),
	}, deps)
}

func (d *daemon) notifier() *workers.Notifier {
	statusCallbackBase := ""
	if d.cfg.SMSConfigured() {
		statusCallbackBase = d.cfg.PublicURL
	}
	return workers.NewNotifier(workers.NotifierConfig{
		Store:       d.store,
		Renderer:    d.renderer,
		Mail:        d.mail,
		SMS:         d.sms,
		Queue:       d.queue,
		MailFrom:    d.cfg.MailFrom,
		PublicURL:   statusCallbackBase,
		MaxAttempts: d.cfg.MaxAttempts,
		Lease:       d.cfg.SendLease,
		Backoff:     workers.ExponentialBackoff(d.cfg.RetryBase, d.cfg.RetryMax),
		Logger:      d.log,
		Metrics:     d.metrics,
	})
}

// syncEngine is the calendar sync engine with one remote per provider.
func (d *daemon) syncEngine() *calsync.Engine {
	remotes := map[string]calsync.RemoteFactory{
		store.ProviderCalDAV: caldavremote.Factory(d.caldavHTTP, d.log),
	}
	if d.google != nil {
		remotes[store.ProviderGoogle] = googleremote.Factory(d.googleRemote())
	}
	return calsync.New(calsync.Config{Store: d.store, Logger: d.log, Remotes: remotes, Metrics: d.metrics})
}

// syncProviders are the providers the engine has a remote for.
func (d *daemon) syncProviders() []string {
	if d.google != nil {
		return []string{store.ProviderCalDAV, store.ProviderGoogle}
	}
	return []string{store.ProviderCalDAV}
}

func (d *daemon) googleRemote() googleremote.Config {
	return googleremote.Config{OAuth: d.google, Store: d.store, APIURL: d.cfg.GoogleAPIURL, Pacer: d.googlePace, Logger: d.log,
		HTTPClient: &http.Client{Timeout: time.Minute, Transport: d.metrics.Transport(store.ProviderGoogle, nil)}}
}

// watcher opens and renews Google push channels; nil when Google is not
// configured or push is off.
func (d *daemon) watcher() *workers.Watcher {
	if !d.cfg.GooglePushEnabled() {
		return nil
	}
	rc := d.googleRemote()
	return workers.NewWatcher(workers.WatcherConfig{
		Store: d.store,
		Calendars: func(conn store.Connection, creds []byte) (workers.ChannelOpener, error) {
			r, err := googleremote.New(rc, conn, creds)
			if err != nil {
				return nil, err
			}
			return r.Calendar(), nil
		},
		Queue:   d.queue,
		Address: d.cfg.PublicURL + "/webhooks/google",
		Logger:  d.log,
	})
}

func (d *daemon) revoker(w *workers.Watcher) *workers.Revoker {
	cfg := workers.RevokerConfig{
		Store:  d.store,
		CalDAV: workers.CalDAVRemovers(d.caldavHTTP),
		Logger: d.log,
		// Blockers of the revoked calendar's busy time go at once.
		Peers: d.store, BlockQueue: d.queue,
	}
	if d.google != nil {
		cfg.Google = d.google
		rc := d.googleRemote()
		cfg.GoogleCopies = func(conn store.Connection, creds []byte) (workers.OurCopiesRemover, error) {
			return googleremote.New(rc, conn, creds)
		}
	}
	if w != nil {
		cfg.Channels = w
	}
	return workers.NewRevoker(cfg)
}

// run serves the given roles until ctx is cancelled, then shuts down
// gracefully: the HTTP server stops accepting, in-flight tasks finish (or
// go back to the queue), and the scheduler releases its lease.
func (d *daemon) run(ctx context.Context, ln net.Listener, roles []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}

	var handler http.Handler
	if slices.Contains(roles, roleAPI) {
		h, err := d.withAdmin(d.handler())
		if err != nil {
			return err
		}
		handler = h
	}

	if slices.Contains(roles, roleWorker) {
		srv := queue.NewServer(d.redis, d.cfg.QueueName, d.cfg.Concurrency, d.log)
		mux := asynq.NewServeMux()
		poller := workers.NewPoller(workers.PollerConfig{Store: d.store, Queue: d.queue,
			Providers: d.syncProviders(), Logger: d.log})
		watcher := d.watcher()
		poll := poller.Poll
		if watcher != nil {
			poll = func(ctx context.Context) error { return errors.Join(poller.Poll(ctx), watcher.Schedule(ctx)) }
		}
		workers.Register(mux, d.notifier(),
			workers.NewSweeper(workers.SweeperConfig{
				Store: d.store, Queue: d.queue, Revoking: d.store, Revokes: d.queue,
				Poll:  poll,
				Grace: 2 * d.cfg.SweepInterval, Logger: d.log, Metrics: d.metrics,
			}),
			workers.NewPurger(workers.PurgerConfig{Store: d.store, Archive: queue.NewInspector(d.redis, d.cfg.QueueName), BatchSize: purgeBatch, Logger: d.log,
				Metrics: d.metrics, Revokes: d.queue}))
		workers.RegisterRevoker(mux, d.revoker(watcher))
		workers.RegisterWatch(mux, watcher)
		eng := d.syncEngine()
		workers.RegisterSync(mux, workers.NewSyncer(workers.SyncerConfig{Engine: eng, Store: d.store, Logger: d.log,
			Blocks: eng, Peers: d.store, BlockQueue: d.queue}))
		// Calendar tasks run on a server of their own: a burst of slow
		// pulls cannot take the slots notifications are sent in.
		calSrv := queue.NewServer(d.redis, queue.CalendarQueue(d.cfg.QueueName), d.cfg.SyncConcurrency, d.log)
		if err := srv.Start(mux); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		if err := calSrv.Start(mux); err != nil {
			srv.Shutdown()
			return fmt.Errorf("worker: calendar: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			calSrv.Shutdown()
			srv.Shutdown()
		}()
	}

	if slices.Contains(roles, roleScheduler) {
		sch := queue.NewScheduler(d.redis, d.cfg.QueueName, d.cfg.SweepInterval, d.cfg.PurgeInterval, d.log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sch.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				fail(fmt.Errorf("scheduler: %w", err))
			}
		}()
	}

	if slices.Contains(roles, roleAPI) {
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: d.cfg.HTTPReadHeaderTimeout,
			ReadTimeout:       d.cfg.HTTPReadTimeout,
			WriteTimeout:      d.cfg.HTTPWriteTimeout,
			IdleTimeout:       d.cfg.HTTPIdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("http: %w", err))
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			_ = srv.Shutdown(shutdownCtx)
		}()
		d.log.Info("listening", "addr", ln.Addr().String(), "public_url", d.cfg.PublicURL)
	} else if ln != nil {
		ln.Close()
	}
	if !slices.Contains(roles, roleAPI) && d.cfg.MetricsListen != "" {
		if err := d.serveMetrics(ctx, &wg, fail); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}

	d.log.Info("termind running", "version", version, "roles", strings.Join(roles, ","),
		"store", d.store.Dialect(), "embedded_queue", d.cfg.EmbeddedQueue())
	<-ctx.Done()
	wg.Wait()
	return errors.Join(errs...)
}

func (c *cli) serve(ctx context.Context, args []string) error {
	fs := newFlags("serve", c.stderr)
	listen := fs.String("listen", "", "address to listen on (overrides TERMIND_LISTEN)")
	rolesFlag := fs.String("roles", strings.Join(allRoles, ","), "comma-separated roles: api, worker, scheduler")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	roles, err := parseRoles(*rolesFlag)
	if err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
		if _, ok := c.lookup("TERMIND_PUBLIC_URL"); !ok {
			cfg.PublicURL = "http://" + *listen
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	log := c.logger(cfg)
	var ln net.Listener
	if slices.Contains(roles, roleAPI) {
		ln, err = net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("TERMIND_LISTEN: %w", err)
		}
	}
	d, err := openDaemon(ctx, cfg, c.lookup, log)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	defer d.close()
	return d.run(ctx, ln, roles)
}
