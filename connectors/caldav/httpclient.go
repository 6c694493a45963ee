package caldav

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Defaults for Options fields left zero.
const (
	DefaultTimeout          = 60 * time.Second
	DefaultMaxResponseBytes = 64 << 20
	// MaxRedirects is how many redirects one request may follow.
	MaxRedirects = 5
)

// Options configure NewHTTPClient. The zero value is the safe default for
// URLs typed in by end users: https only, public addresses only.
type Options struct {
	// AllowPrivate turns the address check off: loopback, private,
	// link-local and the other refused ranges become reachable, and plain
	// http is allowed too, because servers inside a private network often
	// have no certificate. It mirrors TERMIND_CALDAV_ALLOW_PRIVATE=true and
	// is what tests use to reach Radicale on 127.0.0.1.
	AllowPrivate bool
	// AllowHTTP permits plain http:// URLs (and redirects to them) while
	// still refusing private addresses.
	AllowHTTP bool
	// Allow lists prefixes that are reachable although a rule would refuse
	// them, e.g. one in-house CalDAV server at 10.0.0.5/32.
	Allow []netip.Prefix
	// Timeout bounds one whole request, body included. Default
	// DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes bounds one response body, so that a hostile server
	// cannot exhaust memory. Default DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// TLSConfig, if set, is used for https (e.g. to trust a private CA).
	// It is cloned; TLS 1.2 is the minimum either way.
	TLSConfig *tls.Config
}

// NewHTTPClient returns an HTTP client for talking to CalDAV servers whose
// URLs come from end users. It refuses, with an *Error of kind
// ErrForbiddenAddress:
//   - schemes other than https (and http when AllowHTTP or AllowPrivate is set),
//   - hosts that are, or resolve to, an address CheckAddr refuses — checked on
//     the IP actually dialed, so DNS rebinding cannot slip past,
//   - the same on every redirect; at most MaxRedirects redirects are followed.
//
// Proxies from the environment are ignored on purpose: the proxy would be
// dialed instead of the server, and the address check would be worthless.
func NewHTTPClient(opts Options) *http.Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	g := &guard{opts: opts}
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   g.control,
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.TLSConfig != nil {
		tlsConfig = opts.TLSConfig.Clone()
		if tlsConfig.MinVersion < tls.VersionTLS12 {
			tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConfig,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  30 * time.Second,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    4,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: &guardTransport{guard: g, next: transport},
		Timeout:   opts.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return errTooManyRedirects
			}
			return g.checkURL(req.URL)
		},
	}
}

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", MaxRedirects)

// CheckAddr reports whether the default rules allow connecting to a. It
// returns an *Error of kind ErrForbiddenAddress naming the rule, or nil.
// IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) are judged as the IPv4
// address they carry.
func CheckAddr(a netip.Addr) error {
	rule := refusedBy(a)
	if rule == "" {
		return nil
	}
	return newError(ErrForbiddenAddress, "the URL resolves to "+rule,
		fmt.Errorf("%s is %s", a, rule))
}

// refusedBy names the rule that refuses a, or returns "".
func refusedBy(a netip.Addr) string {
	if !a.IsValid() {
		return "an invalid address"
	}
	a = a.Unmap().WithZone("")
	switch {
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsMulticast():
		return "a multicast address"
	}
	for _, r := range refusedPrefixes {
		if r.prefix.Contains(a) {
			return r.rule
		}
	}
	if a.Is6() {
		// Addresses that embed an IPv4 address are judged by it, so that
		// 64:ff9b::7f00:1 or 2002:7f00:1:: do not reach 127.0.0.1.
		b := a.As16()
		switch {
		case nat64Prefix.Contains(a):
			return refusedBy(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixToFourPrefix.Contains(a):
			return refusedBy(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	return ""
}

var (
	nat64Prefix     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPrefix = netip.MustParsePrefix("2002::/16")
)

// refusedPrefixes are ranges that netip's Is* methods do not cover. Read
// only.
var refusedPrefixes = []struct {
	prefix netip.Prefix
	rule   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a reserved address (this network)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address (IETF protocol assignments)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a reserved address (benchmarking)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address (incl. broadcast)"},
	{netip.MustParsePrefix("::/96"), "a reserved address (IPv4-compatible)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a reserved address (local NAT64)"},
	{netip.MustParsePrefix("100::/64"), "a reserved address (discard)"},
	{netip.MustParsePrefix("2001::/32"), "a reserved address (Teredo)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
}

// guard applies Options to URLs and dialed addresses.
type guard struct {
	opts Options
}

func (g *guard) checkAddr(a netip.Addr) error {
	if g.opts.AllowPrivate {
		return nil
	}
	for _, p := range g.opts.Allow {
		if p.Contains(a.Unmap().WithZone("")) {
			return nil
		}
	}
	return CheckAddr(a)
}

// checkURL refuses a URL before any connection is made: wrong scheme, or a
// host that is an IP literal the rules refuse.
func (g *guard) checkURL(u *url.URL) error {
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !g.opts.AllowHTTP && !g.opts.AllowPrivate {
			return newError(ErrForbiddenAddress, "only https URLs are allowed", nil)
		}
	default:
		return newError(ErrForbiddenAddress, "only https URLs are allowed", nil)
	}
	host := u.Hostname()
	if host == "" {
		return newError(ErrForbiddenAddress, "the URL has no host", nil)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return g.checkAddr(a)
	}
	return nil
}

// control runs after DNS resolution and before connect(2), on the address
// actually dialed: no packet leaves for a refused address.
func (g *guard) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return newError(ErrForbiddenAddress, "only TCP connections are allowed", nil)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return newError(ErrForbiddenAddress, "the server's address cannot be checked", err)
	}
	return g.checkAddr(ap.Addr())
}

// guardTransport checks every request's URL (the first one and each
// redirect) and bounds response bodies.
type guardTransport struct {
	guard *guard
	next  http.RoundTripper
}

func (t *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.guard.checkURL(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on error
		}
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.guard.opts.MaxResponseBytes}
	return resp, nil
}

// ErrResponseTooLarge is returned while reading a body longer than
// Options.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("caldav: response too large")

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells "exactly at the limit" from "over it".
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrResponseTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
