package caldav

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	refused := map[string]string{
		"127.0.0.1":              "loopback",
		"127.255.255.254":        "loopback",
		"::1":                    "loopback",
		"10.1.2.3":               "private",
		"172.16.0.1":             "private",
		"172.31.255.255":         "private",
		"192.168.1.1":            "private",
		"fc00::1":                "private",
		"fd12:3456::1":           "private",
		"169.254.169.254":        "link-local",
		"fe80::1":                "link-local",
		"fe80::1%eth0":           "link-local",
		"0.0.0.0":                "unspecified",
		"::":                     "unspecified",
		"0.1.2.3":                "reserved",
		"100.64.0.1":             "carrier-grade NAT",
		"100.127.255.255":        "carrier-grade NAT",
		"224.0.0.1":              "multicast",
		"ff02::1":                "multicast",
		"255.255.255.255":        "broadcast",
		"198.18.0.1":             "benchmarking",
		"192.0.2.10":             "documentation",
		"::ffff:127.0.0.1":       "loopback",
		"::ffff:10.0.0.1":        "private",
		"::ffff:169.254.169.254": "link-local",
		"::ffff:0.0.0.0":         "unspecified",
		"::127.0.0.1":            "IPv4-compatible",
		"64:ff9b::7f00:1":        "loopback",
		"64:ff9b::a9fe:a9fe":     "link-local",
		"2002:7f00:1::1":         "loopback",
		"2002:c0a8:101::1":       "private",
		"2001:0:4136:e378::1":    "Teredo",
		"fec0::1":                "site-local",
		"64:ff9b:1::a00:1":       "NAT64",
		"100::1":                 "discard",
		"2001:db8::1":            "documentation",
	}
	for s, rule := range refused {
		err := CheckAddr(netip.MustParseAddr(s))
		if !errors.Is(err, ErrForbiddenAddress) || !strings.Contains(err.Error(), rule) {
			t.Errorf("CheckAddr(%s) = %v, want ErrForbiddenAddress naming %q", s, err, rule)
		}
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("CheckAddr(%s): message %q shows the address", s, err)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "100.128.0.1", "172.32.0.1", "192.169.0.1", "2a00:1450:4001:82b::200e", "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"} {
		if err := CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want nil", s, err)
		}
	}
	if err := CheckAddr(netip.Addr{}); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("CheckAddr(zero) = %v, want ErrForbiddenAddress", err)
	}
}

// TestControlRefusesBeforeConnect: the dialer's Control hook runs after DNS
// and before connect(2); a refusal there means no packet left.
func TestControlRefusesBeforeConnect(t *testing.T) {
	t.Parallel()
	g := &guard{}
	for _, addr := range []string{"10.1.2.3:443", "169.254.169.254:80", "[::1]:443", "[::ffff:127.0.0.1]:443", "0.0.0.0:80", "100.64.0.1:443", "[fe80::1%eth0]:443"} {
		network := "tcp4"
		if strings.HasPrefix(addr, "[") {
			network = "tcp6"
		}
		if err := g.control(network, addr, nil); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("control(%s) = %v, want ErrForbiddenAddress", addr, err)
		}
	}
	if err := g.control("tcp4", "93.184.215.14:443", nil); err != nil {
		t.Errorf("control(public) = %v, want nil", err)
	}
	if err := g.control("udp4", "93.184.215.14:443", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("control(udp) = %v, want ErrForbiddenAddress", err)
	}
	if err := g.control("tcp4", "not-an-address", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("control(garbage) = %v, want ErrForbiddenAddress", err)
	}
	allowed := &guard{opts: Options{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}}}
	if err := allowed.control("tcp4", "10.0.0.5:443", nil); err != nil {
		t.Errorf("control(allowed 10.0.0.5) = %v, want nil", err)
	}
	if err := allowed.control("tcp4", "10.0.0.6:443", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("control(10.0.0.6, only .5 allowed) = %v, want ErrForbiddenAddress", err)
	}
	if err := (&guard{opts: Options{AllowPrivate: true}}).control("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("control with AllowPrivate = %v, want nil", err)
	}
}

// dialRecorder wraps the client's dialer and remembers every address it is
// asked to dial (before the Control check).
type dialRecorder struct {
	mu    sync.Mutex
	addrs []string
}

func recordDials(t *testing.T, c *http.Client) *dialRecorder {
	t.Helper()
	tr := c.Transport.(*guardTransport).next.(*http.Transport)
	rec := &dialRecorder{}
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		rec.mu.Lock()
		rec.addrs = append(rec.addrs, addr)
		rec.mu.Unlock()
		return dial(ctx, network, addr)
	}
	return rec
}

func (d *dialRecorder) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// countingServer is a loopback server that counts the requests reaching it.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func port(srv *httptest.Server) string {
	return srv.URL[strings.LastIndex(srv.URL, ":")+1:]
}

// TestDefaultClientRefuses runs requests through a client that allows http
// but not private addresses, so each case proves the address rule rather
// than the scheme rule. Only loopback targets are ever dialed.
func TestDefaultClientRefuses(t *testing.T) {
	t.Parallel()
	live, hits := countingServer(t, nil)
	p := port(live)
	c := NewHTTPClient(Options{AllowHTTP: true, Timeout: 5 * time.Second})
	dials := recordDials(t, c)

	tests := []struct {
		url  string
		rule string
		dial bool // the check happens at dial time (a host name), not on the URL
	}{
		{"http://127.0.0.1:" + p + "/", "loopback", false},
		{"http://10.1.2.3/", "private", false},
		{"http://169.254.169.254/latest/meta-data/", "link-local", false},
		{"http://[::1]:" + p + "/", "loopback", false},
		{"http://[::ffff:127.0.0.1]:" + p + "/", "loopback", false},
		{"http://[::ffff:a9fe:a9fe]/latest/meta-data/", "link-local", false},
		{"http://0.0.0.0:" + p + "/", "unspecified", false},
		{"http://100.64.0.1/", "carrier-grade NAT", false},
		{"http://[fe80::1%25eth0]/", "link-local", false},
		{"https://10.1.2.3/", "private", false},
		// A host name is resolved first; the resolved 127.0.0.1 is refused
		// in the dialer's Control hook, as a rebinding DNS answer would be.
		{"http://localhost:" + p + "/", "loopback", true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			resp, err := c.Get(tt.url)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded, want ErrForbiddenAddress", tt.url)
			}
			if !errors.Is(err, ErrForbiddenAddress) || !strings.Contains(err.Error(), tt.rule) {
				t.Fatalf("GET %s: %v, want ErrForbiddenAddress naming %q", tt.url, err, tt.rule)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server received %d requests", n)
	}
	for _, a := range dials.dialed() {
		if !strings.HasPrefix(a, "localhost:") {
			t.Errorf("dialer was asked for %s; IP literals must be refused before dialing", a)
		}
	}
}

func TestSchemeRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opts Options
		url  string
		ok   bool
	}{
		{Options{}, "http://dav.example.com/", false},
		{Options{}, "ftp://dav.example.com/", false},
		{Options{AllowHTTP: true}, "ftp://dav.example.com/", false},
		{Options{}, "https://dav.example.com/", true},
		{Options{AllowHTTP: true}, "http://dav.example.com/", true},
		{Options{AllowPrivate: true}, "http://127.0.0.1/", true},
	}
	for _, tt := range tests {
		g := &guard{opts: tt.opts}
		req, err := http.NewRequest(http.MethodGet, tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = g.checkURL(req.URL)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrForbiddenAddress)) {
			t.Errorf("%+v checkURL(%s) = %v, want ok=%v", tt.opts, tt.url, err, tt.ok)
		}
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	// 127.0.0.1 is let through by exception so that a loopback test server
	// can play the allowed public server.
	allowLoopback4 := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	t.Run("to private addresses", func(t *testing.T) {
		t.Parallel()
		target, targetHits := countingServer(t, nil)
		var to string
		src, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, to, http.StatusFound)
		})
		c := NewHTTPClient(Options{AllowHTTP: true, Allow: allowLoopback4, Timeout: 5 * time.Second})
		dials := recordDials(t, c)
		for _, to = range []string{
			"http://169.254.169.254/latest/meta-data/",
			"http://10.1.2.3/",
			"http://[::1]:" + port(target) + "/",
			"http://[::ffff:7f00:2]:" + port(target) + "/",
		} {
			resp, err := c.Get(src.URL)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("redirect to %s followed", to)
			}
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("redirect to %s: %v, want ErrForbiddenAddress", to, err)
			}
		}
		if n := targetHits.Load(); n != 0 {
			t.Errorf("redirect target received %d requests", n)
		}
		for _, a := range dials.dialed() {
			if a != strings.TrimPrefix(src.URL, "http://") {
				t.Errorf("dialer was asked for %s, want only the source server", a)
			}
		}
	})

	t.Run("https to http", func(t *testing.T) {
		t.Parallel()
		plain, plainHits := countingServer(t, nil)
		tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, plain.URL, http.StatusFound)
		}))
		t.Cleanup(tlsSrv.Close)
		trusted := tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig
		c := NewHTTPClient(Options{Allow: allowLoopback4, TLSConfig: trusted, Timeout: 5 * time.Second})
		_, err := c.Get(tlsSrv.URL)
		if !errors.Is(err, ErrForbiddenAddress) || !strings.Contains(err.Error(), "only https") {
			t.Errorf("https → http redirect: %v, want ErrForbiddenAddress (only https)", err)
		}
		if plainHits.Load() != 0 {
			t.Error("the http target was reached")
		}
	})

	t.Run("at most five", func(t *testing.T) {
		t.Parallel()
		srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/again", http.StatusFound)
		})
		c := NewHTTPClient(Options{AllowPrivate: true, Timeout: 5 * time.Second})
		_, err := c.Get(srv.URL)
		if !errors.Is(err, errTooManyRedirects) {
			t.Errorf("redirect loop: %v, want %v", err, errTooManyRedirects)
		}
		if n := hits.Load(); n != MaxRedirects+1 {
			t.Errorf("server saw %d requests, want %d", n, MaxRedirects+1)
		}
	})
}

func TestMaxResponseBytes(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 1024+len(r.URL.Query().Get("extra")))))
	})
	c := NewHTTPClient(Options{AllowPrivate: true, MaxResponseBytes: 1024, Timeout: 5 * time.Second})
	for _, tt := range []struct {
		query   string
		wantErr error
	}{{"", nil}, {"?extra=y", ErrResponseTooLarge}} {
		resp, err := c.Get(srv.URL + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("read %q: %v, want %v", tt.query, err, tt.wantErr)
		}
	}
}

func TestTLSMinimum(t *testing.T) {
	t.Parallel()
	c := NewHTTPClient(Options{TLSConfig: &tls.Config{MinVersion: tls.VersionTLS10}})
	tr := c.Transport.(*guardTransport).next.(*http.Transport)
	if tr.TLSClientConfig.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", tr.TLSClientConfig.MinVersion)
	}
	if tr.Proxy != nil {
		t.Error("the transport uses a proxy; the address check would apply to the proxy instead")
	}
}
