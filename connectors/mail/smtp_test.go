package mail_test

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	termindmail "github.com/termind/termind/connectors/mail"
	"github.com/termind/termind/connectors/mail/mailtest"
)

// The method sets workers use to classify errors.
type (
	temporary  interface{ Temporary() bool }
	coded      interface{ Code() string }
	retryAfter interface{ RetryAfter() time.Duration }
)

func newSMTP(t *testing.T, url string, pool int) *termindmail.SMTP {
	t.Helper()
	s, err := termindmail.NewSMTP(termindmail.SMTPConfig{URL: url, Pool: pool, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func message(id string) termindmail.Message {
	return termindmail.Message{
		ID:      id,
		From:    "Praxis Dr. Müller <termine@praxis.example>",
		To:      "kunde@example.org",
		Subject: "Terminbestätigung für Dienstag",
		Text:    "Guten Tag,\nIhr Termin am Dienstag um 10:00 Uhr ist bestätigt.\nGrüße",
		HTML:    "<p>Guten Tag,</p><p>Ihr Termin am <b>Dienstag</b> um 10:00 Uhr ist bestätigt.</p>",
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// providerError asserts err satisfies all three worker interfaces and
// returns their answers.
func providerError(t *testing.T, err error) (temp bool, code string) {
	t.Helper()
	var tmp temporary
	var c coded
	var ra retryAfter
	if !errors.As(err, &tmp) || !errors.As(err, &c) || !errors.As(err, &ra) {
		t.Fatalf("error %v (%T) lacks Temporary/Code/RetryAfter", err, err)
	}
	if ra.RetryAfter() != 0 {
		t.Errorf("RetryAfter = %v, want 0 for SMTP", ra.RetryAfter())
	}
	return tmp.Temporary(), c.Code()
}

func TestSMTPSendsHeadersAndParts(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t)
	s := newSMTP(t, srv.URL(), 2)

	m := message("ntf_01HZX")
	id, err := s.Send(ctxT(t), m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if id != "<ntf_01HZX@praxis.example>" {
		t.Errorf("message id = %q, want <ntf_01HZX@praxis.example>", id)
	}
	got := srv.WaitFor(t, 1, 5*time.Second)[0]
	if got.From != "termine@praxis.example" || len(got.To) != 1 || got.To[0] != "kunde@example.org" {
		t.Errorf("envelope = %q -> %q", got.From, got.To)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(got.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	from, err := mail.ParseAddress(got.Header.Get("From"))
	if err != nil {
		t.Fatalf("parse From: %v", err)
	}
	if _, err := got.Header.Date(); err != nil {
		t.Errorf("Date header: %v", err)
	}
	for name, want := range map[string]string{
		"Subject":                subject,
		"From name":              from.Name,
		"From address":           from.Address,
		"To":                     got.Header.Get("To"),
		"Message-ID":             got.Header.Get("Message-ID"),
		"X-Termind-Notification": got.Header.Get("X-Termind-Notification"),
		"Auto-Submitted":         got.Header.Get("Auto-Submitted"),
	} {
		expect := map[string]string{
			"Subject":                m.Subject,
			"From name":              "Praxis Dr. Müller",
			"From address":           "termine@praxis.example",
			"To":                     "<kunde@example.org>",
			"Message-ID":             id,
			"X-Termind-Notification": m.ID,
			"Auto-Submitted":         "auto-generated",
		}[name]
		if want != expect {
			t.Errorf("%s = %q, want %q", name, want, expect)
		}
	}
	if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type = %q, want multipart/alternative", ct)
	}
	if strings.TrimRight(got.Text, "\r\n") != strings.ReplaceAll(m.Text, "\n", "\r\n") && strings.TrimRight(got.Text, "\r\n") != m.Text {
		t.Errorf("text part = %q, want %q", got.Text, m.Text)
	}
	if strings.TrimRight(got.HTML, "\r\n") != m.HTML {
		t.Errorf("HTML part = %q, want %q", got.HTML, m.HTML)
	}
}

func TestSMTPMessageIDAndSingleParts(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t)
	s := newSMTP(t, srv.URL(), 1)
	tests := []struct {
		name      string
		edit      func(*termindmail.Message)
		wantID    string
		wantType  string
		wantText  bool
		wantHTMLs bool
	}{
		{"given id without brackets", func(m *termindmail.Message) { m.MessageID = "abc@mx.example" }, "<abc@mx.example>", "multipart/alternative", true, true},
		{"given id with brackets", func(m *termindmail.Message) { m.MessageID = "<abc2@mx.example>" }, "<abc2@mx.example>", "multipart/alternative", true, true},
		{"text only", func(m *termindmail.Message) { m.HTML = "" }, "<n@praxis.example>", "text/plain", true, false},
		{"html only", func(m *termindmail.Message) { m.Text = "" }, "<n@praxis.example>", "text/html", false, true},
	}
	for i, tc := range tests {
		m := message("n")
		tc.edit(&m)
		id, err := s.Send(ctxT(t), m)
		if err != nil {
			t.Fatalf("%s: Send: %v", tc.name, err)
		}
		got := srv.WaitFor(t, i+1, 5*time.Second)[i]
		if id != tc.wantID || got.Header.Get("Message-ID") != tc.wantID {
			t.Errorf("%s: id = %q, header %q, want %q", tc.name, id, got.Header.Get("Message-ID"), tc.wantID)
		}
		if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
			t.Errorf("%s: Content-Type = %q, want %s", tc.name, ct, tc.wantType)
		}
		if (got.Text != "") != tc.wantText || (got.HTML != "") != tc.wantHTMLs {
			t.Errorf("%s: text %q html %q", tc.name, got.Text, got.HTML)
		}
	}
}

func TestSMTPHeaderValuesCannotInjectHeaders(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t)
	s := newSMTP(t, srv.URL(), 1)
	m := message("inject")
	m.Subject = "Hallo\r\nBcc: evil@example.com\nX-Evil: 1"
	if _, err := s.Send(ctxT(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitFor(t, 1, 5*time.Second)[0]
	if len(got.To) != 1 || got.Header.Get("Bcc") != "" || got.Header.Get("X-Evil") != "" {
		t.Errorf("subject injected headers or recipients: to %v, header %v", got.To, got.Header)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(got.Header.Get("Subject"))
	if err != nil || subject != m.Subject {
		t.Errorf("Subject = %q (%v), want the original text, encoded", subject, err)
	}
}

func TestSMTPReusesConnections(t *testing.T) {
	t.Parallel()
	const n, pool = 50, 4

	t.Run("sequential", func(t *testing.T) {
		t.Parallel()
		srv := mailtest.Start(t)
		s := newSMTP(t, srv.URL(), pool)
		for i := range n {
			if _, err := s.Send(ctxT(t), message(fmt.Sprintf("seq-%d", i))); err != nil {
				t.Fatalf("Send %d: %v", i, err)
			}
		}
		srv.WaitFor(t, n, 5*time.Second)
		if c := srv.Connections(); c != 1 {
			t.Errorf("Connections = %d, want 1 for sequential sends", c)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		srv := mailtest.Start(t)
		s := newSMTP(t, srv.URL(), pool)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				if _, err := s.Send(ctxT(t), message(fmt.Sprintf("con-%d", i))); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Send: %v", err)
		}
		got := srv.WaitFor(t, n, 5*time.Second)
		seen := map[string]bool{}
		for _, r := range got {
			seen[r.Header.Get("X-Termind-Notification")] = true
		}
		if len(seen) != n {
			t.Errorf("distinct notifications = %d, want %d", len(seen), n)
		}
		if c := srv.Connections(); c < 1 || c > pool {
			t.Errorf("Connections = %d, want 1..%d", c, pool)
		}
	})
}

func TestSMTPClassifiesReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code     int
		wantTemp bool
	}{
		{421, true},
		{450, true},
		{451, true},
		{452, true},
		{550, false},
		{552, false},
		{554, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			t.Parallel()
			srv := mailtest.Start(t)
			s := newSMTP(t, srv.URL(), 1)
			srv.FailNext(1, tc.code, "test failure")
			_, err := s.Send(ctxT(t), message("fail"))
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			temp, code := providerError(t, err)
			if temp != tc.wantTemp || code != fmt.Sprint(tc.code) {
				t.Errorf("Temporary, Code = %v, %q; want %v, %q", temp, code, tc.wantTemp, fmt.Sprint(tc.code))
			}
			if strings.Contains(err.Error(), "kunde@example.org") {
				t.Errorf("error text %q holds the recipient address", err.Error())
			}
			// The next message goes through, on the same session unless the
			// server said it is closing it.
			if _, err := s.Send(ctxT(t), message("after")); err != nil {
				t.Fatalf("Send after failure: %v", err)
			}
			if srv.Count() != 1 {
				t.Errorf("accepted = %d, want 1", srv.Count())
			}
			if tc.code != 421 && srv.Connections() != 1 {
				t.Errorf("Connections = %d, want 1 (session kept after a reply)", srv.Connections())
			}
		})
	}
}

func TestSMTPReconnectsAfterServerDrop(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t)
	s := newSMTP(t, srv.URL(), 2)
	if _, err := s.Send(ctxT(t), message("before")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	srv.DropConnections()
	for i := range 3 {
		if _, err := s.Send(ctxT(t), message(fmt.Sprintf("after-%d", i))); err != nil {
			t.Fatalf("Send after drop: %v", err)
		}
	}
	srv.WaitFor(t, 4, 5*time.Second)
	if c := srv.Connections(); c != 2 {
		t.Errorf("Connections = %d, want 2 (one redial)", c)
	}
}

func TestSMTPAuth(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartAuth(t, "termind", "s3cret")

	s := newSMTP(t, srv.URL(), 1)
	if _, err := s.Send(ctxT(t), message("authed")); err != nil {
		t.Fatalf("Send with credentials: %v", err)
	}

	bad := newSMTP(t, "smtp://termind:wrong@"+srv.Addr()+"?tls=none", 1)
	_, err := bad.Send(ctxT(t), message("denied"))
	if err == nil {
		t.Fatal("Send with wrong password succeeded")
	}
	if temp, code := providerError(t, err); temp || code != "535" {
		t.Errorf("Temporary, Code = %v, %q; want false, 535", temp, code)
	}

	none := newSMTP(t, "smtp://"+srv.Addr()+"?tls=none", 1)
	_, err = none.Send(ctxT(t), message("anon"))
	if temp, code := providerError(t, err); temp || code != "502" {
		t.Errorf("without credentials: Temporary, Code = %v, %q; want false, 502", temp, code)
	}
	if srv.Count() != 1 {
		t.Errorf("accepted = %d, want 1", srv.Count())
	}
}

func TestSMTPNetworkFailures(t *testing.T) {
	t.Parallel()

	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()

	// A server that accepts but never greets.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	acceptDone := make(chan struct{})
	t.Cleanup(func() {
		silent.Close()
		<-acceptDone
		held.Wait()
	})
	go func() {
		defer close(acceptDone)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held.Go(func() {
				buf := make([]byte, 1)
				_, _ = c.Read(buf) // until the client gives up
				c.Close()
			})
		}
	}()

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		addr     string
		timeout  time.Duration
		ctx      context.Context
		wantCode string
	}{
		{"refused", closedAddr, 2 * time.Second, context.Background(), "network"},
		{"no greeting", silent.Addr().String(), 200 * time.Millisecond, context.Background(), "timeout"},
		{"cancelled context", silent.Addr().String(), 2 * time.Second, cancelled, "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := termindmail.NewSMTP(termindmail.SMTPConfig{URL: "smtp://" + tc.addr + "?tls=none", Timeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			start := time.Now()
			_, err = s.Send(tc.ctx, message("x"))
			temp, code := providerError(t, err)
			if !temp || code != tc.wantCode {
				t.Errorf("Temporary, Code = %v, %q; want true, %q (err %v)", temp, code, tc.wantCode, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestSMTPCancelWhileWaitingForReply(t *testing.T) {
	t.Parallel()
	// Greets, answers EHLO, then hangs on MAIL FROM.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(c, "220 hang ESMTP\r\n")
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if strings.HasPrefix(strings.ToUpper(string(buf[:n])), "EHLO") {
				fmt.Fprint(c, "250-hang\r\n250 8BITMIME\r\n")
			}
		}
	}()
	s, err := termindmail.NewSMTP(termindmail.SMTPConfig{URL: "smtp://" + l.Addr().String() + "?tls=none", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Send(ctx, message("hang"))
	if temp, code := providerError(t, err); !temp || code != "timeout" {
		t.Errorf("Temporary, Code = %v, %q; want true, timeout (err %v)", temp, code, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send returned after %v, want soon after the context deadline", d)
	}
}

func TestSMTPRefusesInvalidMessages(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t)
	s := newSMTP(t, srv.URL(), 1)
	tests := []struct {
		name string
		edit func(*termindmail.Message)
	}{
		{"bad to", func(m *termindmail.Message) { m.To = "not an address" }},
		{"bad from", func(m *termindmail.Message) { m.From = "" }},
		{"no id", func(m *termindmail.Message) { m.ID = "" }},
		{"id with slash", func(m *termindmail.Message) { m.ID = "../etc/passwd" }},
		{"no body", func(m *termindmail.Message) { m.Text, m.HTML = "", "" }},
	}
	for _, tc := range tests {
		m := message("valid-id")
		tc.edit(&m)
		_, err := s.Send(ctxT(t), m)
		if temp, code := providerError(t, err); temp || code != "invalid" {
			t.Errorf("%s: Temporary, Code = %v, %q; want false, invalid", tc.name, temp, code)
		}
		if strings.Contains(err.Error(), "not an address") {
			t.Errorf("%s: error text %q holds the address", tc.name, err)
		}
	}
	if srv.Connections() != 0 {
		t.Errorf("Connections = %d, want 0 for refused messages", srv.Connections())
	}
}

func TestSMTPClose(t *testing.T) {
	t.Parallel()
	srv := mailtest.Start(t)
	s := newSMTP(t, srv.URL(), 1)
	if _, err := s.Send(ctxT(t), message("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.Send(ctxT(t), message("two"))
	if temp, code := providerError(t, err); !temp || code != "closed" {
		t.Errorf("after Close: Temporary, Code = %v, %q; want true, closed", temp, code)
	}
}

func TestNewSMTPValidatesURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		wantErr string
	}{
		{"smtp://mail.example:2525?tls=none", ""},
		{"smtp://user:pw0rd@mail.example", ""},
		{"smtp://user:pw0rd@mail.example?tls=tls", ""},
		{"smtp://user:pw0rd@127.0.0.1:25?tls=none", ""},
		{"http://mail.example", "scheme"},
		{"smtp://:25", "host"},
		{"smtp://mail.example?tls=maybe", "tls must be"},
		{"smtp://mail.example:0", "port"},
		{"smtp://mail.example:70000", "port"},
		{"smtp://mail.example?pool=3", "unknown parameter"},
		{"smtp://mail.example/path", "path"},
		{"smtp://user:pw0rd@mail.example?tls=none", "credentials need"},
		{"::", "not a URL"},
	}
	for _, tc := range tests {
		_, err := termindmail.NewSMTP(termindmail.SMTPConfig{URL: tc.url})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.url, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "TERMIND_SMTP_URL")):
			t.Errorf("%q: error %v, want one naming TERMIND_SMTP_URL and %q", tc.url, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "pw0rd") {
			t.Errorf("%q: error %q shows the password", tc.url, err)
		}
	}
}

func TestDirWritesParseableEML(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "deliveries")
	d, err := termindmail.NewDir(dir)
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	m := message("ntf_42")
	id, err := d.Send(ctxT(t), m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "ntf_42.eml"))
	if err != nil {
		t.Fatalf("read .eml: %v", err)
	}
	got, err := mailtest.Parse(data)
	if err != nil {
		t.Fatalf("parse .eml: %v", err)
	}
	if got.Header.Get("Message-ID") != id || id != "<ntf_42@praxis.example>" {
		t.Errorf("Message-ID = %q, returned %q", got.Header.Get("Message-ID"), id)
	}
	if got.Header.Get("X-Termind-Notification") != "ntf_42" {
		t.Errorf("X-Termind-Notification = %q", got.Header.Get("X-Termind-Notification"))
	}
	if strings.TrimRight(got.HTML, "\r\n") != m.HTML || got.Text == "" {
		t.Errorf("parts: text %q html %q", got.Text, got.HTML)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the .eml (no temp files)", len(entries))
	}
	// Unsafe ids never reach the file system.
	bad := message("../escape")
	_, err = d.Send(ctxT(t), bad)
	if temp, code := providerError(t, err); temp || code != "invalid" {
		t.Errorf("unsafe id: Temporary, Code = %v, %q; want false, invalid", temp, code)
	}
}

func BenchmarkSMTPSend(b *testing.B) {
	srv := mailtest.StartSink(b)
	s, err := termindmail.NewSMTP(termindmail.SMTPConfig{URL: srv.URL(), Pool: 8})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	m := message("bench")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Send(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(srv.Connections()), "conns")
}
