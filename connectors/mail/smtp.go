package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// SMTPConfig configures NewSMTP.
type SMTPConfig struct {
	// URL is smtp://user:pass@host:port?tls=none|starttls|tls. tls defaults
	// to starttls; the port to 587 for starttls, 465 for tls, 25 for none.
	// With user info the client authenticates (PLAIN, else LOGIN).
	URL string
	// Pool is the most connections open at once; they stay open between
	// sends. Default 4.
	Pool int
	// Timeout bounds dialing and each message's SMTP exchange. Default 30s.
	Timeout time.Duration
}

// TLS modes of SMTPConfig.URL.
const (
	TLSNone     = "none"
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
)

const (
	defaultPool    = 4
	defaultTimeout = 30 * time.Second
	// Idle connections older than this are replaced rather than reused:
	// servers drop idle sessions and a silently dropped one would cost a
	// full timeout.
	maxIdle = 30 * time.Second
)

// SMTP sends messages through one SMTP server over a small pool of reused
// connections. It is safe for concurrent use.
type SMTP struct {
	host    string
	port    int
	tlsMode string
	user    string
	pass    string
	timeout time.Duration
	helo    string

	slots chan struct{} // one token per connection that may be open
	idle  chan *conn    // connected, idle, ready for the next message

	mu     sync.Mutex
	closed bool
}

// conn is one SMTP session. Each has its own go-mail client so that no
// per-connection state (dialer, auth) is shared between goroutines.
type conn struct {
	client   *gomail.Client
	smtp     *smtp.Client
	net      *trackedConn
	lastUsed time.Time
}

// NewSMTP validates cfg. It does not connect: the first Send does.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("TERMIND_SMTP_URL: not a URL: want smtp://user:pass@host:port?tls=none|starttls|tls")
	}
	if u.Scheme != "smtp" {
		return nil, fmt.Errorf("TERMIND_SMTP_URL: scheme must be smtp, got %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("TERMIND_SMTP_URL: host is required")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("TERMIND_SMTP_URL: must not have a path")
	}
	q := u.Query()
	for key := range q {
		if key != "tls" {
			return nil, fmt.Errorf("TERMIND_SMTP_URL: unknown parameter %q (only tls is allowed)", key)
		}
	}
	mode := q.Get("tls")
	var port int
	switch mode {
	case "", TLSStartTLS:
		mode, port = TLSStartTLS, 587
	case TLSImplicit:
		port = 465
	case TLSNone:
		port = 25
	default:
		return nil, fmt.Errorf("TERMIND_SMTP_URL: tls must be none, starttls or tls, got %q", mode)
	}
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("TERMIND_SMTP_URL: port must be 1-65535, got %q", p)
		}
	}
	s := &SMTP{host: host, port: port, tlsMode: mode, timeout: cfg.Timeout}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		if s.user == "" {
			return nil, errors.New("TERMIND_SMTP_URL: user info without a user name")
		}
		if mode == TLSNone && !isLoopback(host) {
			// Credentials would cross the network in clear text.
			return nil, errors.New("TERMIND_SMTP_URL: credentials need tls=starttls or tls unless the host is loopback")
		}
	}
	if cfg.Pool < 0 {
		return nil, errors.New("SMTP pool size must not be negative")
	}
	pool := cfg.Pool
	if pool == 0 {
		pool = defaultPool
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	// EHLO name: the machine's name, else "localhost" (RFC 5321 allows a
	// literal; some servers refuse a bare "localhost", so prefer the name).
	s.helo = "localhost"
	if name, err := os.Hostname(); err == nil && name != "" {
		s.helo = name
	}
	s.slots = make(chan struct{}, pool)
	s.idle = make(chan *conn, pool)
	return s, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers m and returns its Message-ID. Errors are *Error.
func (s *SMTP) Send(ctx context.Context, m Message) (string, error) {
	msg, messageID, err := build(m, time.Now())
	if err != nil {
		return "", err
	}
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.slots }()

	c := s.takeIdle()
	reused := c != nil
	for {
		if c == nil {
			if c, err = s.dial(ctx); err != nil {
				return "", err
			}
		}
		sendErr := s.sendOn(ctx, c, msg)
		if sendErr == nil {
			if c.net.aborted.Load() {
				// The context ended just as the send completed; the
				// connection's deadline is spent.
				c.close()
			} else {
				s.putIdle(c)
			}
			return messageID, nil
		}
		if reused && staleConn(sendErr) {
			// The server closed the idle session; nothing was accepted, so
			// the message goes out once on a fresh connection.
			c.close()
			c, reused = nil, false
			continue
		}
		e := classify("send", sendErr, ctx.Err(), c.net.err())
		if c.usable(ctx, e) {
			s.putIdle(c)
		} else {
			c.close()
		}
		return "", e
	}
}

// acquire waits for a connection slot.
func (s *SMTP) acquire(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return &Error{Op: "send", ProviderCode: CodeClosed, Transient: true, Reason: "sender closed", Err: errors.New("mail: SMTP sender closed")}
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return classify("send", ctx.Err(), ctx.Err(), nil)
	}
}

func (s *SMTP) takeIdle() *conn {
	for {
		select {
		case c := <-s.idle:
			if time.Since(c.lastUsed) < maxIdle && c.smtp.HasConnection() {
				return c
			}
			c.close()
		default:
			return nil
		}
	}
}

func (s *SMTP) putIdle(c *conn) {
	c.lastUsed = time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.close()
		return
	}
	// Never blocks: at most cap(slots) connections exist.
	s.idle <- c
}

// dial opens and greets one session (EHLO, STARTTLS, AUTH).
func (s *SMTP) dial(ctx context.Context) (*conn, error) {
	c := &conn{}
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithHELO(s.helo),
		gomail.WithDialContextFunc(s.dialFunc(c)),
		// Liveness is checked by using the connection (see staleConn), and
		// RSET after a completed transaction is redundant: both would cost
		// a round trip per message.
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
	}
	switch s.tlsMode {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		// none, or implicit TLS that dialFunc already set up.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.user != "" {
		opts = append(opts, gomail.WithSMTPAuthCustom(&plainOrLogin{user: s.user, pass: s.pass, host: s.host}))
	}
	client, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return nil, &Error{Op: "dial", ProviderCode: CodeInvalid, Reason: "SMTP client setup", Err: err}
	}
	c.client = client
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		var ioErr error
		if c.net != nil {
			ioErr = c.net.err()
			_ = c.net.Close()
		}
		return nil, classify("dial", err, ctx.Err(), ioErr)
	}
	c.smtp = sc
	return c, nil
}

// dialFunc dials TCP (plus TLS for implicit TLS) and records the connection
// in c, so that Send can interrupt it on cancellation and read its I/O errors.
func (s *SMTP) dialFunc(c *conn) gomail.DialContextFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.net = &trackedConn{Conn: raw}
		if s.tlsMode != TLSImplicit {
			return c.net, nil
		}
		// The tls.Conn must be outermost: go-mail detects TLS by its type.
		tc := tls.Client(c.net, &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return tc, nil
	}
}

// sendOn sends msg over c, aborting the exchange when ctx ends.
func (s *SMTP) sendOn(ctx context.Context, c *conn, msg *gomail.Msg) error {
	stop := context.AfterFunc(ctx, c.net.abort)
	defer stop()
	return c.client.SendWithSMTPClient(c.smtp, msg)
}

// staleConn reports errors where an idle session turned out to be dead
// before the server accepted anything of the message: no reply at all to
// MAIL FROM, or 421 (the server is closing the session).
func staleConn(err error) bool {
	var sendErr *gomail.SendError
	if !errors.As(err, &sendErr) {
		return false
	}
	switch sendErr.Reason {
	case gomail.ErrConnCheck:
		return true
	case gomail.ErrSMTPMailFrom:
		return sendErr.ErrorCode() == 0 || sendErr.ErrorCode() == 421
	}
	return false
}

// usable reports whether c may carry the next message after the failure e:
// only after a clean SMTP reply, and only when RSET confirms the session.
func (c *conn) usable(ctx context.Context, e *Error) bool {
	if ctx.Err() != nil || c.net.err() != nil || !c.smtp.HasConnection() {
		return false
	}
	if _, err := strconv.Atoi(e.ProviderCode); err != nil || e.ProviderCode == "421" {
		return false
	}
	return c.smtp.Reset() == nil
}

func (c *conn) close() {
	if c.smtp != nil && c.smtp.HasConnection() && c.net.err() == nil {
		// QUIT politely, but never wait long for it.
		_ = c.smtp.UpdateDeadline(time.Second)
		if c.client.CloseWithSMTPClient(c.smtp) == nil {
			return
		}
	}
	if c.smtp != nil {
		_ = c.smtp.Close()
	}
	if c.net != nil {
		_ = c.net.Close()
	}
}

// Close closes the idle connections. Sends that are under way finish and
// close their connection; later Sends fail with code "closed".
func (s *SMTP) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for {
		select {
		case c := <-s.idle:
			c.close()
		default:
			return nil
		}
	}
}

// trackedConn remembers the first I/O error (to tell timeouts from other
// failures, which go-mail's errors do not expose) and lets a cancelled
// context interrupt a blocked read or write.
type trackedConn struct {
	net.Conn
	aborted atomic.Bool
	mu      sync.Mutex
	first   error
}

func (t *trackedConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	t.record(err)
	return n, err
}

func (t *trackedConn) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	t.record(err)
	return n, err
}

func (t *trackedConn) record(err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	if t.first == nil {
		t.first = err
	}
	t.mu.Unlock()
}

func (t *trackedConn) err() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}

// abort makes every blocked and future I/O fail at once.
func (t *trackedConn) abort() {
	t.aborted.Store(true)
	_ = t.Conn.SetDeadline(time.Unix(1, 0))
}

// The deadline setters keep an abort in force: go-mail extends the
// deadline before each exchange, which would otherwise undo it.
func (t *trackedConn) SetDeadline(d time.Time) error {
	if t.aborted.Load() {
		d = time.Unix(1, 0)
	}
	return t.Conn.SetDeadline(d)
}

func (t *trackedConn) SetReadDeadline(d time.Time) error {
	if t.aborted.Load() {
		d = time.Unix(1, 0)
	}
	return t.Conn.SetReadDeadline(d)
}

func (t *trackedConn) SetWriteDeadline(d time.Time) error {
	if t.aborted.Load() {
		d = time.Unix(1, 0)
	}
	return t.Conn.SetWriteDeadline(d)
}

// plainOrLogin authenticates with PLAIN when the server offers it, else
// LOGIN. One instance serves one connection (it keeps the chosen mechanism).
type plainOrLogin struct {
	user, pass, host string
	chosen           smtp.Auth
}

func (a *plainOrLogin) Start(server *smtp.ServerInfo) (string, []byte, error) {
	// allowUnenc is false: go-mail still permits loopback without TLS, and
	// NewSMTP refuses credentials over plain text to anything else.
	if slices.Contains(server.Auth, "PLAIN") || !slices.Contains(server.Auth, "LOGIN") {
		a.chosen = smtp.PlainAuth("", a.user, a.pass, a.host, false)
	} else {
		a.chosen = smtp.LoginAuth(a.user, a.pass, a.host, false)
	}
	return a.chosen.Start(server)
}

func (a *plainOrLogin) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.chosen.Next(fromServer, more)
}
