package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// poller keeps CalDAV connections syncing: every interval it asks for a
// pull of each connection (POST /v1/connections/{id}/sync), spread evenly
// over the interval, so that pulls compete with sends for the workers.
type poller struct {
	api *apiClient
	ids []string
	log *slog.Logger

	requests, refused atomic.Int64
	mu                sync.Mutex
	lat               []time.Duration
	started           time.Time

	// Filled by finish.
	synced, errored int
	states          map[string]int
}

// setUpPolling makes n calendars on the CalDAV server (MKCALENDAR; an
// existing one is reused) and connects each through the API under its own
// subject with consent to read busy times.
func setUpPolling(ctx context.Context, o options, api *apiClient, log *slog.Logger) (*poller, error) {
	if o.caldavURL == "" || o.caldavUser == "" {
		return nil, fmt.Errorf("--poll-connections needs --caldav-url and --caldav-user")
	}
	dav := &http.Client{Timeout: 30 * time.Second}
	p := &poller{api: api, log: log}
	ids := make([]string, o.pollConns)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.pollConns)
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < o.pollConns && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				id, err := connectCalendar(ctx, o, dav, api, i)
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	p.ids = ids
	log.Info("load: calendars connected", "connections", len(ids), "took", time.Since(start).Round(time.Millisecond))
	return p, nil
}

// caldavUser is the user of calendar i: --caldav-user with %d replaced by
// i (one user per calendar keeps the server's discovery cheap), or the
// same user for all.
func caldavUser(o options, i int) string {
	if strings.Contains(o.caldavUser, "%d") {
		return fmt.Sprintf(o.caldavUser, i)
	}
	return o.caldavUser
}

// connectCalendar makes calendar i and connects it, trying a few times:
// the API checks every new connection against the server, which may be
// slow to answer while many are being made.
func connectCalendar(ctx context.Context, o options, dav *http.Client, api *apiClient, i int) (string, error) {
	user := caldavUser(o, i)
	calURL := fmt.Sprintf("%s/%s/load-%d/", strings.TrimRight(o.caldavURL, "/"), user, i)
	var lastErr error
	for try := range 5 {
		if try > 0 {
			time.Sleep(time.Duration(try) * time.Second)
		}
		if lastErr = mkcalendar(ctx, dav, calURL, user, o.caldavPass); lastErr != nil {
			continue
		}
		var conn struct {
			ID string `json:"id"`
		}
		code, err := api.do(ctx, "POST", "/v1/connections/caldav", map[string]any{
			"subject_id": fmt.Sprintf("load-poll-%d", i), "url": calURL,
			"username": user, "password": o.caldavPass,
			"privacy": "busy", "direction": "import",
			"consent": map[string]any{"purposes": []string{"calendar.read.busy"}, "policy_version": "2026-01"},
		}, &conn)
		if err == nil && code == http.StatusCreated {
			return conn.ID, nil
		}
		lastErr = fmt.Errorf("status %d: %v", code, err)
	}
	return "", fmt.Errorf("connect calendar %d: %w", i, lastErr)
}

func mkcalendar(ctx context.Context, c *http.Client, calURL, user, pass string) error {
	body := `<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">` +
		`<D:set><D:prop><C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>` +
		`</D:prop></D:set></C:mkcalendar>`
	req, err := http.NewRequestWithContext(ctx, "MKCALENDAR", calURL, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/xml; charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("MKCALENDAR: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	// 405 and 409: the calendar exists from an earlier run.
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("MKCALENDAR: status %d", resp.StatusCode)
	}
	return nil
}

// run asks for a sync of every connection once per interval until ctx
// ends, then reads every connection's state.
func (p *poller) run(ctx context.Context, interval time.Duration) {
	p.started = time.Now()
	step := interval / time.Duration(len(p.ids))
	tick := time.NewTicker(max(step, time.Millisecond))
	defer tick.Stop()
	slots := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := 0; ; i = (i + 1) % len(p.ids) {
		select {
		case <-ctx.Done():
			wg.Wait()
			p.finish()
			return
		case <-tick.C:
		}
		id := p.ids[i]
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			start := time.Now()
			code, err := p.api.do(ctx, "POST", "/v1/connections/"+id+"/sync", map[string]any{}, nil)
			if ctx.Err() != nil {
				return
			}
			p.requests.Add(1)
			if err != nil || code != http.StatusAccepted {
				p.refused.Add(1)
			}
			p.mu.Lock()
			p.lat = append(p.lat, time.Since(start))
			p.mu.Unlock()
		})
	}
}

func (p *poller) latencies() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lat)
}

// finish reads each connection: synced during the run, last error, state.
func (p *poller) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.states = map[string]int{}
	for _, id := range p.ids {
		var c struct {
			State      string `json:"state"`
			LastSyncAt string `json:"last_sync_at"`
			LastError  string `json:"last_error"`
		}
		if code, err := p.api.do(ctx, "GET", "/v1/connections/"+id, nil, &c); err != nil || code != http.StatusOK {
			p.states["unreadable"]++
			continue
		}
		p.states[c.State]++
		if at, err := time.Parse(time.RFC3339, c.LastSyncAt); err == nil && !at.Before(p.started.Add(-time.Second)) {
			p.synced++
		}
		if c.LastError != "" {
			p.errored++
		}
	}
}
