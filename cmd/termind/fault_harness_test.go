package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/termind/termind/connectors/mail/mailtest"
	"github.com/termind/termind/connectors/sms/smstest"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue/queuetest"
)

// The fault suite runs the real binary as separate processes, so that a
// fault can be what it is in production: a SIGKILL, a cut connection, a
// flushed Redis. The test process holds the peers (SMTP server, Twilio
// fake, proxies) and reads the outcome straight from the database.

// buildTermind compiles the termind binary into dir.
func buildTermind(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "termind")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// faultEnv is one termind deployment for a fault scenario: a fresh
// PostgreSQL database, a private Redis database, an SMTP sink, the Twilio
// fake and a tenant. Processes are started with start.
type faultEnv struct {
	t        *testing.T
	bin      string
	dbURL    string // direct, for the test's own queries
	redisURL string // direct
	db       *sql.DB
	smtp     *mailtest.Server
	twilio   *smstest.Server
	token    string
	// env is handed to every termind process; scenarios change it (to
	// point at a proxy, to shorten retries) before starting processes.
	env    map[string]string
	apiURL string
	client *http.Client
}

func newFaultEnv(t *testing.T, bin string) *faultEnv {
	t.Helper()
	e := &faultEnv{t: t, bin: bin, client: &http.Client{Timeout: 60 * time.Second}}
	e.dbURL = storetest.URL(t, store.DialectPostgres)
	s := storetest.Open(t, e.dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	_, e.token = storetest.NewTenant(t, s)
	db, err := sql.Open("pgx", e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.redisURL = queuetest.RedisURL(t)
	e.smtp = mailtest.StartSink(t)
	e.twilio = smstest.Start(t, testTwilioSID, testTwilioToken)
	listen := freeAddr(t)
	e.apiURL = "http://" + listen
	e.env = map[string]string{
		"TERMIND_LISTEN":               listen,
		"TERMIND_DATABASE_URL":         e.dbURL,
		"TERMIND_REDIS_URL":            e.redisURL,
		"TERMIND_SECRET_KEY":           hex.EncodeToString(bytes.Repeat([]byte{7}, 32)),
		"TERMIND_SMTP_URL":             e.smtp.URL(),
		"TERMIND_MAIL_FROM":            "Praxis Test <termine@praxis.example>",
		"TERMIND_TWILIO_ACCOUNT_SID":   testTwilioSID,
		"TERMIND_TWILIO_AUTH_TOKEN":    testTwilioToken,
		"TERMIND_TWILIO_FROM":          testTwilioFrom,
		"TERMIND_TWILIO_API_URL":       e.twilio.URL(),
		"TERMIND_CALDAV_ALLOW_PRIVATE": "true",
		"TERMIND_DELIVERIES_DIR":       t.TempDir(),
		// Scaled down so that a scenario ends in seconds: a sweep every
		// second (grace two seconds), a claimed send counts as interrupted
		// after 30 s instead of 5 min.
		"TERMIND_SWEEP_INTERVAL": "1s",
		"TERMIND_SEND_LEASE":     "30s",
		"TERMIND_RETRY_BASE":     "200ms",
		"TERMIND_RETRY_MAX":      "2s",
		"TERMIND_LOG_FORMAT":     "json",
	}
	return e
}

// freeAddr finds a free loopback port for a process to listen on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// termindProc is one `termind serve` process.
type termindProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// start runs `termind serve --roles roles` with the environment's
// settings. The process is killed in t.Cleanup if it still runs.
func (e *faultEnv) start(name, roles string) *termindProc {
	e.t.Helper()
	logPath := filepath.Join(e.t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(e.bin, "serve", "--roles", roles)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.t.TempDir()}
	for k, v := range e.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		e.t.Fatalf("start %s: %v", name, err)
	}
	p := &termindProc{t: e.t, name: name, cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	e.t.Cleanup(func() {
		p.kill()
		if e.t.Failed() {
			p.dumpLog()
		}
	})
	if strings.Contains(roles, roleAPI) {
		e.waitFor(30*time.Second, name+" API up", func() bool {
			select {
			case <-p.exited:
				p.dumpLog()
				e.t.Fatalf("%s exited during start-up", name)
			default:
			}
			resp, err := e.client.Get(e.apiURL + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone; nothing of it
// runs afterwards (no deferred shutdown, no final records).
func (p *termindProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s did not exit after SIGKILL", p.name)
	}
}

// dumpLog writes the last lines of the process's log to the test log.
func (p *termindProc) dumpLog() {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	p.t.Logf("%s log (last %d lines):\n%s", p.name, len(lines), strings.Join(lines, "\n"))
}

// do sends a JSON request with the tenant's admin key; out may be nil.
func (e *faultEnv) do(method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.apiURL+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %d answer: %w", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// mustDo is do for calls that must answer want.
func (e *faultEnv) mustDo(method, path string, body, out any, want int) {
	e.t.Helper()
	code, err := e.do(method, path, body, out)
	if err != nil || code != want {
		e.t.Fatalf("%s %s: %d, %v (want %d)", method, path, code, err, want)
	}
}

// submit posts items through the batch endpoint (1,000 per request, from
// 4 clients) and returns how many were accepted (202). A request the API
// could not answer is retried: a booking system retries with the same
// idempotency keys.
func (e *faultEnv) submit(items []map[string]any) int {
	e.t.Helper()
	batches := make(chan []map[string]any)
	var mu sync.Mutex
	accepted := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for batch := range batches {
				var res struct {
					Items []struct {
						StatusCode int `json:"status_code"`
					} `json:"items"`
				}
				for try := 0; ; try++ {
					code, err := e.do("POST", "/v1/notifications/batch", map[string]any{"items": batch}, &res)
					if err == nil && code == http.StatusOK {
						break
					}
					if try == 20 {
						e.t.Errorf("batch not accepted after %d tries: %d %v", try+1, code, err)
						return
					}
					time.Sleep(500 * time.Millisecond)
				}
				n := 0
				for _, it := range res.Items {
					if it.StatusCode == http.StatusAccepted || it.StatusCode == http.StatusOK {
						n++
					}
				}
				mu.Lock()
				accepted += n
				mu.Unlock()
			}
		})
	}
	for i := 0; i < len(items); i += benchBatch {
		batches <- items[i:min(i+benchBatch, len(items))]
	}
	close(batches)
	wg.Wait()
	return accepted
}

// mailItems builds n mail requests with keys prefix-0 … prefix-(n-1).
func mailItems(prefix string, n int) []map[string]any {
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = mailRequest(fmt.Sprintf("%s-%d", prefix, i))
	}
	return items
}

func (e *faultEnv) waitFor(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// open counts notifications that are not in a final state yet.
func (e *faultEnv) open() int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(`SELECT count(*) FROM notifications WHERE status IN ('scheduled', 'sending')`).Scan(&n); err != nil {
		e.t.Fatalf("count open notifications: %v", err)
	}
	return n
}

// waitSettled waits until no notification is scheduled or sending.
func (e *faultEnv) waitSettled(timeout time.Duration) {
	e.t.Helper()
	e.waitFor(timeout, "every notification in a final state", func() bool { return e.open() == 0 })
}

// faultRow is a notification as the tally reads it.
type faultRow struct {
	id, channel, recipient, status, reason string
	reconcile                              bool
	attempts                               int
}

func (e *faultEnv) rows() []faultRow {
	e.t.Helper()
	rs, err := e.db.Query(`SELECT id, channel, recipient, status, status_reason, needs_reconciliation,
		jsonb_array_length(attempts::jsonb) FROM notifications`)
	if err != nil {
		e.t.Fatalf("read notifications: %v", err)
	}
	defer rs.Close()
	var out []faultRow
	for rs.Next() {
		var r faultRow
		if err := rs.Scan(&r.id, &r.channel, &r.recipient, &r.status, &r.reason, &r.reconcile, &r.attempts); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// faultTally is what a scenario reports. A notification is delivered when
// it is recorded sent and the provider got it exactly once; duplicated
// counts extra copies at the provider; lost counts notifications neither
// delivered nor marked for reconciliation (and provider copies of
// notifications we have no row for). Reconciliation-marked ones (failed,
// outcome_unknown) are split by whether the provider got them.
type faultTally struct {
	total, inFlight, delivered, duplicated, lost     int
	reconcile, reconcileAccepted, reconcileNeverSent int
	retried                                          int // notifications that needed more than one attempt
}

// tally compares the rows with what the providers received: mail by the
// X-Termind-Notification header, SMS by recipient number (each SMS in a
// scenario goes to its own number).
func (e *faultEnv) tally(inFlight int) faultTally {
	e.t.Helper()
	mails := e.smtp.NotificationCounts()
	sms := map[string]int{}
	for _, m := range e.twilio.Messages() {
		sms[m.To]++
	}
	tl := faultTally{inFlight: inFlight}
	seen := map[string]bool{}
	for _, r := range e.rows() {
		tl.total++
		got := mails[r.id]
		seen[r.id] = true
		if r.channel == store.ChannelSMS {
			got = sms[r.recipient]
		}
		if got > 1 {
			tl.duplicated += got - 1
		}
		if r.attempts > 1 {
			tl.retried++
		}
		switch {
		case r.reconcile && r.reason == store.ReasonOutcomeUnknown:
			tl.reconcile++
			if got > 0 {
				tl.reconcileAccepted++
			} else {
				tl.reconcileNeverSent++
			}
		case (r.status == store.StatusSent || r.status == store.StatusDelivered) && got >= 1:
			tl.delivered++
		default:
			tl.lost++
			if tl.lost <= 5 {
				e.t.Logf("lost: %s status %s reason %q, provider copies %d", r.id, r.status, r.reason, got)
			}
		}
	}
	for id, n := range mails {
		if !seen[id] {
			e.t.Logf("provider got %d copies of %q, which has no row", n, id)
			tl.lost += n
		}
	}
	return tl
}

// report logs the tally in the fixed format docs/RELIABILITY.md quotes and
// asserts that nothing was lost or duplicated.
func (e *faultEnv) report(scenario string, tl faultTally, elapsed time.Duration, extra string) {
	e.t.Helper()
	e.t.Logf("FAULT %-14s total=%d in_flight=%d delivered=%d duplicated=%d lost=%d reconciliation=%d (provider_accepted=%d never_sent=%d) retried=%d elapsed=%s %s",
		scenario, tl.total, tl.inFlight, tl.delivered, tl.duplicated, tl.lost,
		tl.reconcile, tl.reconcileAccepted, tl.reconcileNeverSent, tl.retried, elapsed.Round(100*time.Millisecond), extra)
	if tl.lost != 0 {
		e.t.Errorf("%s: %d notifications lost", scenario, tl.lost)
	}
	if tl.duplicated != 0 {
		e.t.Errorf("%s: %d duplicate deliveries", scenario, tl.duplicated)
	}
	if tl.delivered+tl.reconcile != tl.total {
		e.t.Errorf("%s: delivered %d + reconciliation %d != total %d", scenario, tl.delivered, tl.reconcile, tl.total)
	}
}

// proxy runs a toxiproxy TCP proxy in this process in front of upstream
// (host:port); cut and restore drop and re-open it. It stops in t.Cleanup.
type proxy struct {
	t *testing.T
	p *toxiproxy.Proxy
}

func startProxy(t *testing.T, name, upstream string) *proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return &proxy{t: t, p: p}
}

// Addr is where clients connect instead of upstream.
func (p *proxy) Addr() string { return p.p.Listen }

// cut closes every proxied connection and refuses new ones, as a crashed
// or unreachable server would.
func (p *proxy) cut() { p.p.Stop() }

// restore accepts connections again on the same address.
func (p *proxy) restore() {
	p.t.Helper()
	var err error
	for range 50 { // the port may linger for a moment after Stop
		if err = p.p.Start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("toxiproxy %s: restart: %v", p.p.Name, err)
}

// hostPort returns the host:port of a URL such as redis://… or postgres://….
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("no host in URL: %v", err)
	}
	return u.Host
}

// replaceHost puts addr in place of the host:port of raw.
func replaceHost(t *testing.T, raw, addr string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}
