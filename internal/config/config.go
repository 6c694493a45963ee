// Package config reads termind's configuration from TERMIND_* environment
// variables. Every command of the binary reads the same configuration, so
// `termind tenant create` beside a running `termind serve` uses the same
// database. Secrets may also be given as TERMIND_*_FILE (a path whose
// content is the value), as container platforms mount them.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration. The zero value is not useful: use Load.
type Config struct {
	Listen    string // TERMIND_LISTEN
	PublicURL string // TERMIND_PUBLIC_URL: where providers reach us (webhooks, OAuth)

	DatabaseURL string // TERMIND_DATABASE_URL: SQLite path or postgres://…
	RedisURL    string // TERMIND_REDIS_URL: "" runs the embedded queue
	QueueName   string // TERMIND_QUEUE_NAME

	SMTPURL  string // TERMIND_SMTP_URL: "" writes mail to DeliveriesDir
	MailFrom string // TERMIND_MAIL_FROM

	TwilioAccountSID          string // TERMIND_TWILIO_ACCOUNT_SID
	TwilioAuthToken           string // TERMIND_TWILIO_AUTH_TOKEN
	TwilioFrom                string // TERMIND_TWILIO_FROM
	TwilioMessagingServiceSID string // TERMIND_TWILIO_MESSAGING_SERVICE_SID
	TwilioAPIURL              string // TERMIND_TWILIO_API_URL: "" is Twilio itself

	// SecretKey encrypts credentials at rest (TERMIND_SECRET_KEY, 32 bytes in
	// hex or base64); SecretKeysOld are decrypt-only keys during rotation.
	// Both are read by internal/secrets; with neither, embedded mode
	// generates KeyFile beside the SQLite database.
	KeyFile string // TERMIND_KEY_FILE

	GoogleClientID     string // TERMIND_GOOGLE_CLIENT_ID
	GoogleClientSecret string // TERMIND_GOOGLE_CLIENT_SECRET
	GoogleAuthURL      string // TERMIND_GOOGLE_AUTH_URL: "" is Google's
	GoogleTokenURL     string // TERMIND_GOOGLE_TOKEN_URL
	GoogleRevokeURL    string // TERMIND_GOOGLE_REVOKE_URL
	GoogleAPIURL       string // TERMIND_GOOGLE_API_URL
	// GooglePush opens push channels (events.watch) for Google
	// connections: "on", "off", or "auto" — on when TERMIND_PUBLIC_URL is
	// https, which Google requires of webhook addresses.
	GooglePush string // TERMIND_GOOGLE_PUSH
	// GooglePushDebounce: notifications within one such period fold into
	// one pull.
	GooglePushDebounce time.Duration // TERMIND_GOOGLE_PUSH_DEBOUNCE
	// GooglePace is the Calendar API requests per second allowed per user.
	GooglePace int // TERMIND_GOOGLE_PACE

	// CalDAVAllowPrivate lets CalDAV URLs reach loopback and private
	// addresses (and plain http): for tests and on-premises servers only.
	CalDAVAllowPrivate bool // TERMIND_CALDAV_ALLOW_PRIVATE

	DeliveriesDir string // TERMIND_DELIVERIES_DIR
	TemplatesDir  string // TERMIND_TEMPLATES_DIR: tenant template overrides

	Concurrency int // TERMIND_WORKER_CONCURRENCY
	// SyncConcurrency: calendar tasks at once per worker process, apart
	// from Concurrency's notification slots.
	SyncConcurrency int           // TERMIND_SYNC_CONCURRENCY
	SweepInterval   time.Duration // TERMIND_SWEEP_INTERVAL
	PurgeInterval   time.Duration // TERMIND_PURGE_INTERVAL
	MaxAttempts     int           // TERMIND_MAX_ATTEMPTS
	RetryBase       time.Duration // TERMIND_RETRY_BASE: first retry delay of a transient failure
	RetryMax        time.Duration // TERMIND_RETRY_MAX: cap of the exponential backoff
	// SendLease is how long a claimed send may take before the sweeper
	// counts it as interrupted (outcome unknown).
	SendLease time.Duration // TERMIND_SEND_LEASE

	// Limits of the HTTP server against slow and idle clients: a client
	// that trickles its headers or body must not hold a connection open.
	HTTPReadHeaderTimeout time.Duration // TERMIND_HTTP_READ_HEADER_TIMEOUT
	HTTPReadTimeout       time.Duration // TERMIND_HTTP_READ_TIMEOUT: the whole request, headers and body
	HTTPWriteTimeout      time.Duration // TERMIND_HTTP_WRITE_TIMEOUT: from the end of the headers to the end of the answer
	HTTPIdleTimeout       time.Duration // TERMIND_HTTP_IDLE_TIMEOUT: keep-alive between requests

	LogLevel  string // TERMIND_LOG_LEVEL: debug | info | warn | error
	LogFormat string // TERMIND_LOG_FORMAT: text | json

	// MetricsToken is the bearer token GET /metrics needs; "" serves it to
	// loopback clients only (TERMIND_METRICS_TOKEN).
	MetricsToken string
	// MetricsListen is where a process without the api role (a worker)
	// serves /metrics; "" serves none there (TERMIND_METRICS_LISTEN).
	MetricsListen string
}

// Defaults used when a variable is unset.
const (
	DefaultListen        = "127.0.0.1:8080"
	DefaultDatabaseURL   = "termind.db"
	DefaultQueueName     = "termind"
	DefaultMailFrom      = "termind <noreply@termind.localhost>"
	DefaultDeliveriesDir = "deliveries"
)

// Lookup is os.LookupEnv's shape, so tests can pass a map.
type Lookup func(key string) (string, bool)

// FromMap adapts a map to a Lookup (for tests).
func FromMap(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Load reads the configuration. Errors name the variable and the rule.
func Load(lookup Lookup) (Config, error) {
	r := reader{lookup: lookup}
	c := Config{
		Listen:      r.str("TERMIND_LISTEN", DefaultListen),
		PublicURL:   r.str("TERMIND_PUBLIC_URL", ""),
		DatabaseURL: r.secret("TERMIND_DATABASE_URL", DefaultDatabaseURL),
		RedisURL:    r.secret("TERMIND_REDIS_URL", ""),
		QueueName:   r.str("TERMIND_QUEUE_NAME", DefaultQueueName),

		SMTPURL:  r.secret("TERMIND_SMTP_URL", ""),
		MailFrom: r.str("TERMIND_MAIL_FROM", DefaultMailFrom),

		TwilioAccountSID:          r.str("TERMIND_TWILIO_ACCOUNT_SID", ""),
		TwilioAuthToken:           r.secret("TERMIND_TWILIO_AUTH_TOKEN", ""),
		TwilioFrom:                r.str("TERMIND_TWILIO_FROM", ""),
		TwilioMessagingServiceSID: r.str("TERMIND_TWILIO_MESSAGING_SERVICE_SID", ""),
		TwilioAPIURL:              r.str("TERMIND_TWILIO_API_URL", ""),

		KeyFile: r.str("TERMIND_KEY_FILE", ""),

		GoogleClientID:     r.str("TERMIND_GOOGLE_CLIENT_ID", ""),
		GoogleClientSecret: r.secret("TERMIND_GOOGLE_CLIENT_SECRET", ""),
		GoogleAuthURL:      r.str("TERMIND_GOOGLE_AUTH_URL", ""),
		GoogleTokenURL:     r.str("TERMIND_GOOGLE_TOKEN_URL", ""),
		GoogleRevokeURL:    r.str("TERMIND_GOOGLE_REVOKE_URL", ""),
		GoogleAPIURL:       r.str("TERMIND_GOOGLE_API_URL", ""),
		GooglePush:         r.oneOf("TERMIND_GOOGLE_PUSH", "auto", "auto", "on", "off"),
		GooglePace:         r.positiveInt("TERMIND_GOOGLE_PACE", 5),
		GooglePushDebounce: r.duration("TERMIND_GOOGLE_PUSH_DEBOUNCE", 2*time.Second),

		CalDAVAllowPrivate: r.boolean("TERMIND_CALDAV_ALLOW_PRIVATE", false),

		DeliveriesDir: r.str("TERMIND_DELIVERIES_DIR", DefaultDeliveriesDir),
		TemplatesDir:  r.str("TERMIND_TEMPLATES_DIR", ""),

		Concurrency:     r.positiveInt("TERMIND_WORKER_CONCURRENCY", 100),
		SyncConcurrency: r.positiveInt("TERMIND_SYNC_CONCURRENCY", 20),
		SweepInterval:   r.duration("TERMIND_SWEEP_INTERVAL", 30*time.Second),
		PurgeInterval:   r.duration("TERMIND_PURGE_INTERVAL", time.Hour),
		MaxAttempts:     r.positiveInt("TERMIND_MAX_ATTEMPTS", 8),
		RetryBase:       r.duration("TERMIND_RETRY_BASE", 30*time.Second),
		RetryMax:        r.duration("TERMIND_RETRY_MAX", time.Hour),
		SendLease:       r.duration("TERMIND_SEND_LEASE", 5*time.Minute),

		HTTPReadHeaderTimeout: r.duration("TERMIND_HTTP_READ_HEADER_TIMEOUT", 5*time.Second),
		HTTPReadTimeout:       r.duration("TERMIND_HTTP_READ_TIMEOUT", 30*time.Second),
		HTTPWriteTimeout:      r.duration("TERMIND_HTTP_WRITE_TIMEOUT", 30*time.Second),
		HTTPIdleTimeout:       r.duration("TERMIND_HTTP_IDLE_TIMEOUT", 2*time.Minute),

		LogLevel:  r.oneOf("TERMIND_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		LogFormat: r.oneOf("TERMIND_LOG_FORMAT", "text", "text", "json"),

		MetricsToken:  r.secret("TERMIND_METRICS_TOKEN", ""),
		MetricsListen: r.str("TERMIND_METRICS_LISTEN", ""),
	}
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	if c.KeyFile == "" {
		c.KeyFile = defaultKeyFile(c.DatabaseURL)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return c, nil
}

// Validate checks rules that involve the value's shape or several variables.
// It is separate from Load so that flags overriding variables are checked too.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("TERMIND_LISTEN: must be host:port, got %q", c.Listen))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("TERMIND_METRICS_LISTEN: must be host:port, got %q", c.MetricsListen))
		}
	}
	if c.RetryBase > c.RetryMax {
		errs = append(errs, errors.New("TERMIND_RETRY_BASE: must not exceed TERMIND_RETRY_MAX"))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("TERMIND_PUBLIC_URL: must be an absolute http(s) URL"))
		}
	}
	if (c.GoogleClientID == "") != (c.GoogleClientSecret == "") {
		errs = append(errs, errors.New("TERMIND_GOOGLE_CLIENT_ID and TERMIND_GOOGLE_CLIENT_SECRET: set both or neither"))
	}
	if c.SMSConfigured() {
		if c.TwilioAccountSID == "" || c.TwilioAuthToken == "" {
			errs = append(errs, errors.New("TERMIND_TWILIO_ACCOUNT_SID and TERMIND_TWILIO_AUTH_TOKEN: both are required to send SMS through Twilio"))
		}
		if (c.TwilioFrom == "") == (c.TwilioMessagingServiceSID == "") {
			errs = append(errs, errors.New("TERMIND_TWILIO_FROM or TERMIND_TWILIO_MESSAGING_SERVICE_SID: exactly one must be set"))
		}
	}
	return errors.Join(errs...)
}

// SMSConfigured reports whether any Twilio setting is present; with none,
// SMS are written to DeliveriesDir instead.
func (c Config) SMSConfigured() bool {
	return c.TwilioAccountSID != "" || c.TwilioAuthToken != "" || c.TwilioFrom != "" || c.TwilioMessagingServiceSID != ""
}

// GooglePushEnabled reports whether Google connections get push channels.
func (c Config) GooglePushEnabled() bool {
	return c.GoogleConfigured() && (c.GooglePush == "on" || c.GooglePush == "auto" && strings.HasPrefix(c.PublicURL, "https://"))
}

// GoogleConfigured reports whether Google Calendar connections are offered.
func (c Config) GoogleConfigured() bool { return c.GoogleClientID != "" }

// defaultKeyFile puts the generated key beside a SQLite database (the two
// must be backed up together); with PostgreSQL it lands in the working
// directory, though a production setup sets TERMIND_SECRET_KEY instead.
func defaultKeyFile(databaseURL string) string {
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		return "termind.key"
	}
	path := strings.TrimPrefix(databaseURL, "sqlite:")
	return filepath.Join(filepath.Dir(path), "termind.key")
}

// EmbeddedQueue reports whether the queue runs in-process.
func (c Config) EmbeddedQueue() bool { return c.RedisURL == "" }

type reader struct {
	lookup Lookup
	errs   []error
}

func (r *reader) str(key, def string) string {
	if v, ok := r.lookup(key); ok && v != "" {
		return v
	}
	return def
}

// secret reads KEY, or the file named by KEY_FILE; setting both is an error
// because one of them would silently win.
func (r *reader) secret(key, def string) string {
	v, hasValue := r.lookup(key)
	path, hasFile := r.lookup(key + "_FILE")
	switch {
	case hasValue && v != "" && hasFile && path != "":
		r.errs = append(r.errs, fmt.Errorf("%s and %s_FILE: set only one", key, key))
		return ""
	case hasFile && path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("%s_FILE: %w", key, err))
			return ""
		}
		return strings.TrimRight(string(b), "\r\n")
	case hasValue && v != "":
		return v
	}
	return def
}

func (r *reader) boolean(key string, def bool) bool {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: must be true or false, got %q", key, v))
		return def
	}
	return b
}

func (r *reader) positiveInt(key string, def int) int {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		r.errs = append(r.errs, fmt.Errorf("%s: must be a positive integer, got %q", key, v))
		return def
	}
	return n
}

func (r *reader) duration(key string, def time.Duration) time.Duration {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.errs = append(r.errs, fmt.Errorf("%s: must be a positive Go duration such as 30s or 1h, got %q", key, v))
		return def
	}
	return d
}

func (r *reader) oneOf(key, def string, allowed ...string) string {
	v := r.str(key, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.errs = append(r.errs, fmt.Errorf("%s: must be one of %s, got %q", key, strings.Join(allowed, ", "), v))
	return def
}
