// Package caldavtest runs a real Radicale CalDAV server (the Debian package
// radicale) on 127.0.0.1 for tests, and writes to it with plain HTTP the way
// a user's own calendar app would.
//
// Tests fail, never skip, when Radicale cannot be started: CI installs it
// with apt-get install radicale.
package caldavtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const installHint = "install the Debian package radicale (apt-get install radicale)"

// startTimeout bounds how long Radicale may take to answer after start.
const startTimeout = 10 * time.Second

// Radicale is one Radicale process with its own configuration and storage.
type Radicale struct {
	URL   string            // http://127.0.0.1:PORT/
	Users map[string]string // user name → password (htpasswd, plain)
	Dir   string            // config, users file and collections/

	t      testing.TB
	probe  string // password of probeUser, unique to this instance
	bin    string
	config string
	addr   string
	client *http.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	cancel context.CancelFunc
	exited chan struct{}
	output *syncBuffer
}

// StartRadicale starts Radicale with the users alice:secret and
// bob:hunter2, each allowed to see only their own collections
// (rights owner_only). It stops in t.Cleanup.
func StartRadicale(t testing.TB) *Radicale {
	t.Helper()
	bin, err := exec.LookPath("radicale")
	if err != nil {
		t.Fatalf("caldavtest: radicale not found: %s: %v", installHint, err)
	}
	dir := t.TempDir()
	r := &Radicale{
		Users:  map[string]string{"alice": "secret", "bob": "hunter2"},
		Dir:    dir,
		t:      t,
		bin:    bin,
		config: filepath.Join(dir, "config"),
		client: &http.Client{Timeout: 10 * time.Second},
		probe:  rand.Text(),
	}
	var users strings.Builder
	for u, p := range r.Users {
		fmt.Fprintf(&users, "%s:%s\n", u, p)
	}
	fmt.Fprintf(&users, "%s:%s\n", probeUser, r.probe)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users.String()), 0o600); err != nil {
		t.Fatalf("caldavtest: write users: %v", err)
	}
	t.Cleanup(r.Stop)

	// The free port is found by binding and releasing it; another process
	// may take it in between, so try a few.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("caldavtest: find a free port: %v", err)
		}
		r.addr = "127.0.0.1:" + strconv.Itoa(port)
		r.URL = "http://" + r.addr + "/"
		if err := r.writeConfig(); err != nil {
			t.Fatalf("caldavtest: write config: %v", err)
		}
		if lastErr = r.start(); lastErr == nil {
			return r
		}
	}
	t.Fatalf("caldavtest: start radicale: %v", lastErr)
	return nil
}

func (r *Radicale) writeConfig() error {
	// delay = 0: no pause after a failed login, so tests stay fast.
	config := fmt.Sprintf(`[server]
hosts = %s

[auth]
type = htpasswd
htpasswd_filename = %s
htpasswd_encryption = plain
delay = 0

[storage]
filesystem_folder = %s

[rights]
type = owner_only

[logging]
level = warning
`, r.addr, filepath.Join(r.Dir, "users"), filepath.Join(r.Dir, "collections"))
	return os.WriteFile(r.config, []byte(config), 0o600)
}

// Start starts Radicale again after Stop, on the same port with the same
// data. It fails the test given to StartRadicale if Radicale does not come
// up, so call it from that test's goroutine.
func (r *Radicale) Start() {
	r.t.Helper()
	if err := r.start(); err != nil {
		r.t.Fatalf("caldavtest: restart radicale: %v", err)
	}
}

func (r *Radicale) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return errors.New("already running")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, r.bin, "--config", r.config)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "HOME="+r.Dir) // no user config file
	// Ask politely first so Radicale releases its port and storage lock.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("%s: %w", installHint, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	r.cmd, r.cancel, r.exited, r.output = cmd, cancel, exited, out

	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			r.cmd = nil
			cancel()
			return fmt.Errorf("radicale exited during start-up: %s", strings.TrimSpace(out.String()))
		default:
		}
		if r.answers() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stopLocked()
	return fmt.Errorf("radicale did not answer on %s within %s: %s", r.addr, startTimeout, strings.TrimSpace(out.String()))
}

// probeUser is a user only this instance knows, with a random password.
const probeUser = "caldavtest-probe"

// answers reports whether our Radicale answers. Logging in as the probe
// user tells it from another test's Radicale that took the same port first.
func (r *Radicale) answers() bool {
	req, err := http.NewRequest("PROPFIND", r.URL, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Depth", "0")
	req.SetBasicAuth(probeUser, r.probe)
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusMultiStatus
}

// Stop stops Radicale and waits for it to exit; the data stays. Calling it
// again does nothing.
func (r *Radicale) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

func (r *Radicale) stopLocked() {
	if r.cmd == nil {
		return
	}
	r.cancel()
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.t.Errorf("caldavtest: radicale did not exit")
	}
	if r.t.Failed() {
		if out := strings.TrimSpace(r.output.String()); out != "" {
			r.t.Logf("caldavtest: radicale output:\n%s", out)
		}
	}
	r.cmd = nil
}

// MakeCalendar creates a calendar for events named name in user's home
// with MKCALENDAR and returns its collection URL (with trailing slash).
func (r *Radicale) MakeCalendar(t testing.TB, user, name string) string {
	t.Helper()
	u := r.URL + url.PathEscape(user) + "/" + slug(name) + "/"
	var escaped bytes.Buffer
	_ = xml.EscapeText(&escaped, []byte(name)) // writes to memory, cannot fail
	body := `<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>` +
		`<D:displayname>` + escaped.String() + `</D:displayname>` +
		`<C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>` +
		`</D:prop></D:set></C:mkcalendar>`
	status, _, resp := r.Do(t, user, "MKCALENDAR", u, http.Header{"Content-Type": {"application/xml; charset=utf-8"}}, body)
	if status != http.StatusCreated {
		t.Fatalf("caldavtest: MKCALENDAR %s: %d %s", u, status, resp)
	}
	return u
}

// PutEvent stores icsBody as <calendar>/<uid>.ics with a plain PUT, as a
// user's calendar app would, and returns the new ETag. calendarPath is a
// collection path ("/alice/office/") or URL.
func (r *Radicale) PutEvent(t testing.TB, user, calendarPath, uid, icsBody string) string {
	t.Helper()
	u := r.EventURL(t, calendarPath, uid)
	status, h, resp := r.Do(t, user, http.MethodPut, u, http.Header{"Content-Type": {"text/calendar; charset=utf-8"}}, icsBody)
	if status != http.StatusCreated && status != http.StatusNoContent && status != http.StatusOK {
		t.Fatalf("caldavtest: PUT %s: %d %s", u, status, resp)
	}
	return h.Get("ETag")
}

// DeleteEvent deletes <calendar>/<uid>.ics with a plain DELETE.
func (r *Radicale) DeleteEvent(t testing.TB, user, calendarPath, uid string) {
	t.Helper()
	u := r.EventURL(t, calendarPath, uid)
	status, _, resp := r.Do(t, user, http.MethodDelete, u, nil, "")
	if status != http.StatusOK && status != http.StatusNoContent {
		t.Fatalf("caldavtest: DELETE %s: %d %s", u, status, resp)
	}
}

// EventURL is the URL PutEvent uses for uid in calendarPath.
func (r *Radicale) EventURL(t testing.TB, calendarPath, uid string) string {
	t.Helper()
	base, err := url.Parse(r.URL)
	if err != nil {
		t.Fatalf("caldavtest: %v", err)
	}
	cal, err := base.Parse(calendarPath)
	if err != nil {
		t.Fatalf("caldavtest: calendar path %q: %v", calendarPath, err)
	}
	if !strings.HasSuffix(cal.Path, "/") {
		cal.Path += "/"
	}
	return cal.JoinPath(uid + ".ics").String()
}

// Do sends one request as user (basic auth with the user's password; "" for
// none) and returns status, header and body. target is a path or URL on
// this server.
func (r *Radicale) Do(t testing.TB, user, method, target string, header http.Header, body string) (int, http.Header, string) {
	t.Helper()
	base, _ := url.Parse(r.URL)
	u, err := base.Parse(target)
	if err != nil {
		t.Fatalf("caldavtest: target %q: %v", target, err)
	}
	req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
	if err != nil {
		t.Fatalf("caldavtest: %s %s: %v", method, u, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if user != "" {
		req.SetBasicAuth(user, r.Users[user])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("caldavtest: %s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("caldavtest: %s %s: read body: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes a path segment from a display name.
func slug(name string) string {
	s := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if s == "" {
		s = "calendar"
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects Radicale's output; the process writes while tests
// may read.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// AddUser adds a user with the given password (Radicale reads the users
// file at each login, so it applies at once); tests use it for passwords
// distinctive enough to search for.
func (r *Radicale) AddUser(t testing.TB, user, password string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(r.Dir, "users"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("caldavtest: add user: %v", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s:%s\n", user, password); err != nil {
		t.Fatalf("caldavtest: add user: %v", err)
	}
	r.Users[user] = password
}
