// Package mailtest runs a real SMTP server (github.com/emersion/go-smtp) on
// loopback for tests: it records what it receives, can fail transactions
// with a chosen reply code, and counts sessions to prove connection reuse.
package mailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one accepted message.
type Received struct {
	From   string   // envelope sender (MAIL FROM)
	To     []string // envelope recipients (RCPT TO)
	Data   []byte   // the message as sent
	Header mail.Header
	// Text and HTML are the decoded text/plain and text/html parts.
	Text, HTML string
}

// headerNotification is connectors/mail.HeaderNotification (not imported:
// that package's tests import this one).
const headerNotification = "X-Termind-Notification"

// Server is an in-process SMTP server on 127.0.0.1.
type Server struct {
	srv       *smtp.Server
	addr      string
	sink      bool
	user      string
	pass      string
	sessions  atomic.Int64
	accepted  atomic.Int64
	mu        sync.Mutex
	messages  []Received
	failures  []smtp.SMTPError
	conns     map[*smtp.Conn]struct{}
	arrivedCh chan struct{} // closed and replaced on every accepted message

	// outage, until outageEnd, answers every request: an outage window
	// rather than a count of failures.
	outage    smtp.SMTPError
	outageEnd time.Time
	rejected  atomic.Int64 // transactions answered with an injected failure
	// perID counts accepted messages by their X-Termind-Notification
	// header, in sink mode too: how fault tests tell lost from duplicated.
	perID map[string]int
}

// Start runs a server that keeps every message; it stops in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false, "", "")
}

// StartSink runs a server that only counts messages (no bodies kept): for
// benchmarks.
func StartSink(t testing.TB) *Server {
	t.Helper()
	return start(t, true, "", "")
}

// StartAuth runs a server that requires AUTH PLAIN with user and pass;
// URL includes them.
func StartAuth(t testing.TB, user, pass string) *Server {
	t.Helper()
	return start(t, false, user, pass)
}

func start(t testing.TB, sink bool, user, pass string) *Server {
	t.Helper()
	s := &Server{sink: sink, user: user, pass: pass, conns: map[*smtp.Conn]struct{}{}, perID: map[string]int{}, arrivedCh: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "mailtest.localhost"
	s.srv.AllowInsecureAuth = true // loopback only
	s.srv.MaxMessageBytes = 10 << 20
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		// Serve may not have registered the listener yet when Close runs.
		_ = l.Close()
		<-done
	})
	return s
}

// URL is the server's address for mail.SMTPConfig.URL.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr, RawQuery: "tls=none"}
	if s.user != "" {
		u.User = url.UserPassword(s.user, s.pass)
	}
	return u.String()
}

// Addr is host:port.
func (s *Server) Addr() string { return s.addr }

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.messages...)
}

// WaitFor waits until at least n messages arrived and returns them; it fails
// the test after timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, arrived := len(s.messages), s.arrivedCh
		if s.sink {
			got = int(s.accepted.Load())
		}
		if got >= n {
			msgs := append([]Received(nil), s.messages...)
			s.mu.Unlock()
			return msgs
		}
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("mailtest: %d messages after %v, want %d", got, timeout, n)
			return nil
		}
	}
}

// FailNext makes the next n transactions fail: DATA is answered with code
// (e.g. 451 or 550) and message.
func (s *Server) FailNext(n int, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, smtp.SMTPError{
			Code:         code,
			EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0},
			Message:      message,
		})
	}
}

// FailFor makes every transaction fail until d has passed: DATA is
// answered with code and message, however many transactions arrive.
func (s *Server) FailFor(d time.Duration, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: message}
	s.outageEnd = time.Now().Add(d)
}

// Rejected is the number of transactions answered with an injected failure.
func (s *Server) Rejected() int64 { return s.rejected.Load() }

// NotificationCounts returns how many accepted messages carried each
// X-Termind-Notification header value.
func (s *Server) NotificationCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.perID)
}

// DropConnections closes every open session from the server side, as a
// server restart or idle timeout would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := make([]*smtp.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Conn().Close()
	}
}

// Connections is the number of SMTP sessions opened so far.
func (s *Server) Connections() int { return int(s.sessions.Load()) }

// Count is the number of messages accepted so far.
func (s *Server) Count() int64 { return s.accepted.Load() }

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.sessions.Add(1)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return &session{server: s, conn: c, authed: s.user == ""}, nil
}

// nextFailure pops a queued failure, if any.
func (s *Server) nextFailure() *smtp.SMTPError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.outageEnd) {
		s.rejected.Add(1)
		f := s.outage
		return &f
	}
	if len(s.failures) == 0 {
		return nil
	}
	s.rejected.Add(1)
	f := s.failures[0]
	s.failures = s.failures[1:]
	return &f
}

func (s *Server) accept(r Received, notificationID string) {
	s.accepted.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if notificationID != "" {
		s.perID[notificationID]++
	}
	if !s.sink {
		s.messages = append(s.messages, r)
	}
	close(s.arrivedCh)
	s.arrivedCh = make(chan struct{})
}

type session struct {
	server *Server
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.server.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.server.user || password != ss.server.pass {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if f := ss.server.nextFailure(); f != nil {
		return f
	}
	rec := Received{From: ss.from, To: append([]string(nil), ss.to...)}
	var header mail.Header
	if !ss.server.sink {
		rec.Data = data
		if err := parse(&rec); err != nil {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unparseable message: " + err.Error()}
		}
		header = rec.Header
	} else if msg, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		// Headers only: a sink stays cheap.
		header = msg.Header
	}
	ss.server.accept(rec, header.Get(headerNotification))
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error {
	ss.server.mu.Lock()
	delete(ss.server.conns, ss.conn)
	ss.server.mu.Unlock()
	return nil
}

// Parse decodes a message as the server would receive it (for .eml files).
func Parse(data []byte) (Received, error) {
	r := Received{Data: data}
	err := parse(&r)
	return r, err
}

// parse fills Header, Text and HTML from Data.
func parse(r *Received) error {
	msg, err := mail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		return err
	}
	r.Header = msg.Header
	return walk(r, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
}

// walk decodes one MIME entity, descending into multiparts.
func walk(r *Received, contentType, encoding string, body io.Reader) error {
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type: %w", err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := walk(r, part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part); err != nil {
				return err
			}
		}
	}
	var dec io.Reader
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		dec = quotedprintable.NewReader(body)
	case "base64":
		dec = base64.NewDecoder(base64.StdEncoding, body)
	default:
		dec = body
	}
	content, err := io.ReadAll(dec)
	if err != nil {
		return fmt.Errorf("decode %s: %w", encoding, err)
	}
	switch mediaType {
	case "text/plain":
		r.Text = string(content)
	case "text/html":
		r.HTML = string(content)
	}
	return nil
}
