// Command load drives a running `termind serve` at a fixed rate of mail
// notifications and reports what a booking platform would see: API
// latency, end-to-end delivery latency (it runs the SMTP server termind
// sends to and matches each mail to its request by the
// X-Termind-Notification header), and termind's memory over time.
//
// With --poll-connections N it first connects N CalDAV calendars and then
// asks for a sync of every one of them every --poll-interval while the
// notifications run, to show whether calendar polling starves sending.
//
// bench/load/run.sh starts everything on one machine; see
// docs/RELIABILITY.md for the commands and the figures.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

type options struct {
	url, key      string
	rate          int
	duration      time.Duration
	batch         int
	smtpListen    string
	pid           int
	drain         time.Duration
	maxInFlight   int
	runID         string
	pollConns     int
	pollInterval  time.Duration
	caldavURL     string
	caldavUser    string
	caldavPass    string
	comparePoll   bool
	sampleEvery   time.Duration
	requestTimout time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "termind API base URL")
	flag.StringVar(&o.key, "key", "", "API key (or TERMIND_LOAD_KEY)")
	flag.IntVar(&o.rate, "rate", 1000, "notifications per second")
	flag.DurationVar(&o.duration, "duration", 5*time.Minute, "how long to submit")
	flag.IntVar(&o.batch, "batch", 100, "notifications per request (1: POST /v1/notifications, else the batch endpoint)")
	flag.StringVar(&o.smtpListen, "smtp-listen", "127.0.0.1:2525", "address of the SMTP sink termind sends to (TERMIND_SMTP_URL=smtp://ADDR?tls=none)")
	flag.IntVar(&o.pid, "pid", 0, "termind's process id, to sample its RSS from /proc (0: no sampling)")
	flag.DurationVar(&o.drain, "drain", 2*time.Minute, "how long to wait for outstanding mails after submitting stops")
	flag.IntVar(&o.maxInFlight, "max-in-flight", 64, "concurrent API requests at most; beyond that the schedule slips and it is reported")
	flag.StringVar(&o.runID, "run-id", strconv.FormatInt(time.Now().UnixNano(), 36), "prefix of idempotency keys")
	flag.IntVar(&o.pollConns, "poll-connections", 0, "CalDAV connections to create and keep syncing during the run")
	flag.DurationVar(&o.pollInterval, "poll-interval", 5*time.Second, "how often each connection is asked to sync")
	flag.StringVar(&o.caldavURL, "caldav-url", "", "CalDAV server base URL for --poll-connections (calendars are made under URL/USER/)")
	flag.StringVar(&o.caldavUser, "caldav-user", "", "CalDAV user; with %d in it, calendar i belongs to the user named with i")
	flag.StringVar(&o.caldavPass, "caldav-password", "", "CalDAV password")
	flag.BoolVar(&o.comparePoll, "compare-poll", true, "with --poll-connections: run the same load without polling first")
	flag.DurationVar(&o.sampleEvery, "sample-every", 5*time.Second, "RSS sampling period")
	flag.DurationVar(&o.requestTimout, "request-timeout", 30*time.Second, "API request timeout")
	flag.Parse()
	if o.key == "" {
		o.key = os.Getenv("TERMIND_LOAD_KEY")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if o.key == "" || o.rate <= 0 || o.batch <= 0 || o.batch > 1000 {
		fmt.Fprintln(os.Stderr, "load: --key is required; --rate > 0; 1 <= --batch <= 1000")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log, os.Stdout); err != nil {
		log.Error("load: failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger, out io.Writer) error {
	sink, err := startSink(o.smtpListen)
	if err != nil {
		return err
	}
	defer sink.close()
	client := &http.Client{Timeout: o.requestTimout, Transport: &http.Transport{MaxIdleConnsPerHost: o.maxInFlight + 16}}
	api := &apiClient{base: strings.TrimRight(o.url, "/"), key: o.key, http: client}

	var poll *poller
	if o.pollConns > 0 {
		poll, err = setUpPolling(ctx, o, api, log)
		if err != nil {
			return err
		}
	}

	var mem *rssSampler
	if o.pid > 0 {
		mem = &rssSampler{pid: o.pid, every: o.sampleEvery}
		memCtx, stopMem := context.WithCancel(ctx)
		defer stopMem()
		go mem.run(memCtx)
	}

	if poll != nil && o.comparePoll {
		// The same load without polling first, so that both figures come
		// from the same termind and machine state.
		runPhase(ctx, o, "without polling", api, sink, nil, nil, log, out)
		o.runID += "-poll"
	}
	runPhase(ctx, o, "", api, sink, poll, mem, log, out)
	return nil
}

// runPhase submits for o.duration (with poll running meanwhile, if
// set), waits for the mails, and writes the report.
func runPhase(ctx context.Context, o options, name string, api *apiClient, sink *sink, poll *poller, mem *rssSampler, log *slog.Logger, out io.Writer) {
	pollCtx, stopPoll := context.WithCancel(ctx)
	var pollDone sync.WaitGroup
	if poll != nil {
		pollDone.Go(func() { poll.run(pollCtx, o.pollInterval) })
	}

	log.Info("load: submitting", "phase", name, "rate", o.rate, "batch", o.batch, "duration", o.duration, "polling", poll != nil)
	gen := &generator{o: o, api: api}
	start := time.Now()
	gen.run(ctx)
	submitted := time.Since(start)
	stopPoll()
	pollDone.Wait()

	// Wait for the mails of every accepted notification.
	accepted := gen.acceptedIDs()
	deadline := time.Now().Add(o.drain)
	for ctx.Err() == nil && time.Now().Before(deadline) && sink.countOf(accepted) < len(accepted) {
		time.Sleep(200 * time.Millisecond)
	}
	if mem != nil {
		mem.sample() // the last figure, after the drain
	}
	if name != "" {
		fmt.Fprintf(out, "== %s\n", name)
	}
	gen.report(sink, submitted).write(out, o, mem, poll)
}

// apiClient talks to termind's API with one key.
type apiClient struct {
	base, key string
	http      *http.Client
}

func (a *apiClient) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, nil
}

// generator submits notifications on a fixed schedule.
type generator struct {
	o   options
	api *apiClient

	seq     atomic.Int64
	slipped atomic.Int64 // ticks skipped because max-in-flight requests were open
	mu      sync.Mutex
	apiLat  []time.Duration
	failed  int                  // requests or items not accepted
	sentAt  map[string]time.Time // notification id → when its request started
}

func (g *generator) run(ctx context.Context) {
	g.sentAt = map[string]time.Time{}
	interval := time.Duration(float64(time.Second) * float64(g.o.batch) / float64(g.o.rate))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.After(g.o.duration)
	slots := make(chan struct{}, g.o.maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			g.slipped.Add(1)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			g.submitOne(ctx)
		})
	}
}

func (g *generator) submitOne(ctx context.Context) {
	items := make([]map[string]any, g.o.batch)
	for i := range items {
		items[i] = mailItem(fmt.Sprintf("load-%s-%d", g.o.runID, g.seq.Add(1)))
	}
	start := time.Now()
	var ids []string
	var code int
	var err error
	if g.o.batch == 1 {
		var res struct {
			ID string `json:"id"`
		}
		code, err = g.api.do(ctx, "POST", "/v1/notifications", items[0], &res)
		if err == nil && code == http.StatusAccepted {
			ids = []string{res.ID}
		}
	} else {
		var res struct {
			Items []struct {
				StatusCode int    `json:"status_code"`
				ID         string `json:"id"`
			} `json:"items"`
		}
		code, err = g.api.do(ctx, "POST", "/v1/notifications/batch", map[string]any{"items": items}, &res)
		if err == nil && code == http.StatusOK {
			for _, it := range res.Items {
				if it.StatusCode == http.StatusAccepted {
					ids = append(ids, it.ID)
				}
			}
		}
	}
	lat := time.Since(start)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.apiLat = append(g.apiLat, lat)
	g.failed += len(items) - len(ids)
	for _, id := range ids {
		g.sentAt[id] = start
	}
}

func (g *generator) acceptedIDs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ids := make([]string, 0, len(g.sentAt))
	for id := range g.sentAt {
		ids = append(ids, id)
	}
	return ids
}

// mailItem is a confirmation mail; every variable of the default template
// is present.
func mailItem(key string) map[string]any {
	return map[string]any{
		"idempotency_key": key,
		"channel":         "email",
		"to":              "kunde@example.org",
		"locale":          "de",
		"template":        "confirmation",
		"purpose":         "transactional",
		"subject_id":      "load-subject",
		"data": map[string]any{
			"customer_name": "Jürgen Müller", "provider_name": "Praxis Dr. Weber", "service": "Erstgespräch",
			"start": "2027-03-01T09:30:00Z", "end": "2027-03-01T10:00:00Z", "time_zone": "Europe/Berlin",
		},
	}
}

type report struct {
	submitted              time.Duration
	requests               int
	accepted, failed       int
	slipped                int64
	apiLat                 []time.Duration
	delivered, missing     int
	duplicates             int
	e2eLat                 []time.Duration
	lastDelivery           time.Duration // from the first request to the last mail
	deliveredDuringSubmit  int
	sustainedDeliveryRate  float64
	acceptedRate           float64
	firstStart             time.Time
	lastArrival            time.Time
	submittedNotifications int
}

func (g *generator) report(s *sink, submitted time.Duration) report {
	g.mu.Lock()
	defer g.mu.Unlock()
	arrivals, dups := s.snapshot()
	r := report{
		submitted: submitted, requests: len(g.apiLat), accepted: len(g.sentAt), failed: g.failed,
		slipped: g.slipped.Load(), apiLat: slices.Clone(g.apiLat), duplicates: dups,
	}
	r.submittedNotifications = r.accepted + r.failed
	for id, at := range g.sentAt {
		if r.firstStart.IsZero() || at.Before(r.firstStart) {
			r.firstStart = at
		}
		got, ok := arrivals[id]
		if !ok {
			r.missing++
			continue
		}
		r.delivered++
		r.e2eLat = append(r.e2eLat, got.Sub(at))
		if got.After(r.lastArrival) {
			r.lastArrival = got
		}
		if got.Sub(r.firstStart) <= submitted {
			r.deliveredDuringSubmit++
		}
	}
	if !r.firstStart.IsZero() && !r.lastArrival.IsZero() {
		r.lastDelivery = r.lastArrival.Sub(r.firstStart)
		r.sustainedDeliveryRate = float64(r.delivered) / r.lastDelivery.Seconds()
	}
	r.acceptedRate = float64(r.accepted) / submitted.Seconds()
	return r
}

func (r report) write(w io.Writer, o options, mem *rssSampler, poll *poller) {
	polling := 0
	if poll != nil {
		polling = len(poll.ids)
	}
	fmt.Fprintf(w, "load: rate=%d/s batch=%d duration=%s polling_connections=%d\n", o.rate, o.batch, o.duration, polling)
	fmt.Fprintf(w, "submitted: %d notifications in %d requests over %s (%.0f accepted/s), accepted %d, not accepted %d, ticks slipped %d\n",
		r.submittedNotifications, r.requests, r.submitted.Round(time.Millisecond), r.acceptedRate, r.accepted, r.failed, r.slipped)
	fmt.Fprintf(w, "api latency per request: %s\n", percentiles(r.apiLat))
	fmt.Fprintf(w, "delivered: %d of %d (missing %d, duplicate mails %d); last mail %s after the first request (%.0f mails/s)\n",
		r.delivered, r.accepted, r.missing, r.duplicates, r.lastDelivery.Round(time.Millisecond), r.sustainedDeliveryRate)
	fmt.Fprintf(w, "end-to-end latency (request start → mail at the SMTP server): %s\n", percentiles(r.e2eLat))
	if mem != nil {
		fmt.Fprintf(w, "termind RSS (pid %d, every %s): %s\n", o.pid, o.sampleEvery, mem.summary())
	}
	if poll != nil {
		fmt.Fprintf(w, "polling: %d connections, %d sync requests (%d not accepted), api latency %s; after the run: %d connections synced during it, %d with an error, states %v\n",
			len(poll.ids), poll.requests.Load(), poll.refused.Load(), percentiles(poll.latencies()), poll.synced, poll.errored, poll.states)
	}
}

// percentiles formats p50/p90/p99/max of ds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	r := func(d time.Duration) time.Duration {
		if d < 10*time.Millisecond {
			return d.Round(10 * time.Microsecond)
		}
		return d.Round(time.Millisecond)
	}
	return fmt.Sprintf("p50=%s p90=%s p99=%s max=%s (n=%d)", r(at(0.50)), r(at(0.90)), r(at(0.99)), r(s[len(s)-1]), len(s))
}

// sink is the SMTP server termind delivers to. It reads only the headers
// of each message and notes when the X-Termind-Notification id arrived.
type sink struct {
	srv  *smtp.Server
	done chan struct{}
	mu   sync.Mutex
	at   map[string]time.Time
	dups int
}

func startSink(addr string) (*sink, error) {
	s := &sink{at: map[string]time.Time{}, done: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	s.srv.Addr = addr
	s.srv.Domain = "load.localhost"
	s.srv.MaxMessageBytes = 10 << 20
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.ErrorLog = discardLog{}
	ln, err := listen(addr)
	if err != nil {
		return nil, fmt.Errorf("smtp sink: %w", err)
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *sink) close() {
	_ = s.srv.Close()
	<-s.done
}

func (s *sink) arrived(id string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[id]; ok {
		s.dups++
		return
	}
	s.at[id] = now
}

func (s *sink) countOf(ids []string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := s.at[id]; ok {
			n++
		}
	}
	return n
}

func (s *sink) snapshot() (map[string]time.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.at))
	for k, v := range s.at {
		out[k] = v
	}
	return out, s.dups
}

type sinkSession struct{ s *sink }

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *sinkSession) Reset()                               {}
func (ss *sinkSession) Logout() error                        { return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	br := bufio.NewReader(r)
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, _ = io.Copy(io.Discard, br) // the body is not needed
	if id := h.Get("X-Termind-Notification"); id != "" {
		ss.s.arrived(id)
	}
	return nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

// rssSampler reads VmRSS of a process every period.
type rssSampler struct {
	pid     int
	every   time.Duration
	mu      sync.Mutex
	start   time.Time
	samples []rssSample
}

type rssSample struct {
	at  time.Duration
	kib int64
}

func (m *rssSampler) run(ctx context.Context) {
	m.mu.Lock()
	m.start = time.Now()
	m.mu.Unlock()
	m.sample()
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sample()
		}
	}
}

func (m *rssSampler) sample() {
	kib, err := readRSS(m.pid)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, rssSample{at: time.Since(m.start), kib: kib})
}

// readRSS returns VmRSS from /proc/<pid>/status in KiB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func (m *rssSampler) summary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) == 0 {
		return "no samples"
	}
	var b strings.Builder
	var peak int64
	for _, s := range m.samples {
		peak = max(peak, s.kib)
	}
	fmt.Fprintf(&b, "first %d MiB, peak %d MiB, last %d MiB; series (s:MiB)", m.samples[0].kib/1024, peak/1024, m.samples[len(m.samples)-1].kib/1024)
	for _, s := range m.samples {
		fmt.Fprintf(&b, " %.0f:%d", s.at.Seconds(), s.kib/1024)
	}
	return b.String()
}
