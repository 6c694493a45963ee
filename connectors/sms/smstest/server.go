// Package smstest is a fake of Twilio's Messages resource on loopback. It
// implements the documented behaviour termind relies on: basic auth, the
// create and fetch endpoints, validation with Twilio's error codes and
// JSON error bodies, opted-out recipients, injected failures, and status
// callbacks signed with X-Twilio-Signature.
package smstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/termind/termind/connectors/sms"
)

// PoolNumber is the sender a messaging service "picks" for its messages.
const PoolNumber = "+15005550006"

// Received is one accepted message as Twilio would store it.
type Received struct {
	SID, To, From, MessagingServiceSID, Body, StatusCallback string
}

// Server is the fake. Its URL goes into sms.TwilioConfig.APIURL.
type Server struct {
	srv        *httptest.Server
	accountSID string
	authToken  string
	client     *http.Client

	mu        sync.Mutex
	messages  []*message
	bySID     map[string]*message
	optedOut  map[string]bool
	failures  []failure
	arrivedCh chan struct{} // closed and replaced on every accepted message

	// outage, until outageEnd, answers every request: an outage window
	// rather than a count of failures.
	outage    failure
	outageEnd time.Time
	rejected  int // create requests answered with an injected failure
}

type message struct {
	Received
	status      string
	segments    int
	dateCreated time.Time
	errorCode   int
}

type failure struct {
	status     int
	code       int
	message    string
	retryAfter time.Duration
}

// Start runs the fake for one account; it stops in t.Cleanup.
func Start(t testing.TB, accountSID, authToken string) *Server {
	t.Helper()
	s := &Server{
		accountSID: accountSID,
		authToken:  authToken,
		bySID:      map[string]*message{},
		optedOut:   map[string]bool{},
		arrivedCh:  make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{account}/Messages.json", s.create)
	mux.HandleFunc("GET /2010-04-01/Accounts/{account}/Messages/{file}", s.fetch)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	})
	s.srv = httptest.NewServer(mux) // listens on 127.0.0.1
	s.client = s.srv.Client()
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the fake's base URL, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.URL }

// Messages returns the accepted messages in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.Received
	}
	return out
}

// WaitFor waits until at least n messages were accepted and returns them;
// it fails the test after timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, arrived := len(s.messages), s.arrivedCh
		s.mu.Unlock()
		if got >= n {
			return s.Messages()
		}
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("smstest: %d messages after %v, want %d", got, timeout, n)
			return nil
		}
	}
}

// FailNext answers the next n authenticated create requests with
// httpStatus and a Twilio JSON error of code and message, e.g.
// (1, 400, 21211, "Invalid 'To' Phone Number"). With code 0 the body is
// plain text instead of JSON, as a proxy in front of Twilio would send.
func (s *Server) FailNext(n int, httpStatus int, code int, message string) {
	s.failNext(n, failure{status: httpStatus, code: code, message: message})
}

// FailNextRetryAfter answers the next n create requests with 429, code
// 20429 and a Retry-After header of retryAfter (whole seconds).
func (s *Server) FailNextRetryAfter(n int, retryAfter time.Duration) {
	s.failNext(n, failure{status: http.StatusTooManyRequests, code: 20429, message: "Too Many Requests", retryAfter: retryAfter})
}

// FailForRetryAfter answers every create request with 429, code 20429 and
// a Retry-After header of retryAfter until d has passed: a rate limit that
// lasts a while, however many requests arrive meanwhile.
func (s *Server) FailForRetryAfter(d, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = failure{status: http.StatusTooManyRequests, code: 20429, message: "Too Many Requests", retryAfter: retryAfter}
	s.outageEnd = time.Now().Add(d)
}

// Rejected is the number of create requests answered with an injected failure.
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

func (s *Server) failNext(n int, f failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// OptOut marks number as having replied STOP: later sends to it fail with
// 400 and code 21610.
func (s *Server) OptOut(number string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.optedOut[number] = true
}

// SendStatus posts a status callback for message sid to its StatusCallback
// URL, signed as Twilio signs it. errorCode is sent when non-zero.
func (s *Server) SendStatus(ctx context.Context, sid, status string, errorCode int) error {
	s.mu.Lock()
	m, ok := s.bySID[sid]
	var form url.Values
	var callback string
	if ok {
		m.status = status
		m.errorCode = errorCode
		callback = m.StatusCallback
		from := m.From
		if from == "" {
			from = PoolNumber
		}
		form = url.Values{
			"MessageSid":    {sid},
			"SmsSid":        {sid},
			"MessageStatus": {status},
			"SmsStatus":     {status},
			"AccountSid":    {s.accountSID},
			"To":            {m.To},
			"From":          {from},
			"ApiVersion":    {"2010-04-01"},
		}
		if m.MessagingServiceSID != "" {
			form.Set("MessagingServiceSid", m.MessagingServiceSID)
		}
		if errorCode != 0 {
			form.Set("ErrorCode", strconv.Itoa(errorCode))
		}
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("smstest: no message %s", sid)
	}
	if callback == "" {
		return fmt.Errorf("smstest: message %s has no StatusCallback", sid)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callback, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("smstest: callback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.Sign(s.authToken, callback, form))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("smstest: post callback: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("smstest: callback answered %d", resp.StatusCode)
	}
	return nil
}

var (
	e164Pattern       = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	alphaSender       = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
)

// authorize checks basic auth and the account in the path, as Twilio does
// before anything else.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.accountSID || pass != s.authToken {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return false
	}
	if r.PathValue("account") != s.accountSID {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return false
	}
	return true
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Could not parse the request body")
		return
	}
	if f, ok := s.popFailure(); ok {
		writeFailure(w, f)
		return
	}
	to, from := r.PostForm.Get("To"), r.PostForm.Get("From")
	service, body, callback := r.PostForm.Get("MessagingServiceSid"), r.PostForm.Get("Body"), r.PostForm.Get("StatusCallback")
	switch {
	case to == "":
		writeError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	case !e164Pattern.MatchString(to):
		writeError(w, http.StatusBadRequest, 21211, "The 'To' number "+to+" is not a valid phone number.")
		return
	case from == "" && service == "":
		writeError(w, http.StatusBadRequest, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
		return
	case from != "" && !e164Pattern.MatchString(from) && !alphaSender.MatchString(from):
		writeError(w, http.StatusBadRequest, 21212, "The 'From' number "+from+" is not a valid phone number, shortcode, or alphanumeric sender ID.")
		return
	case service != "" && !serviceSIDPattern.MatchString(service):
		writeError(w, http.StatusBadRequest, 21701, "The Messaging Service Sid "+service+" is invalid.")
		return
	case body == "":
		writeError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case utf8.RuneCountInString(body) > 1600:
		writeError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
		return
	case callback != "" && !validCallback(callback):
		writeError(w, http.StatusBadRequest, 21609, "The StatusCallback URL "+callback+" is not a valid URL.")
		return
	}
	s.mu.Lock()
	if s.optedOut[to] {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, 21610, "Attempt to send to unsubscribed recipient")
		return
	}
	m := &message{
		Received:    Received{SID: newSID(), To: to, From: from, MessagingServiceSID: service, Body: body, StatusCallback: callback},
		status:      "queued",
		dateCreated: time.Now().UTC(),
	}
	if service != "" {
		// Twilio picks the sender from the service's pool later.
		m.status = "accepted"
	}
	m.segments, _ = sms.Segments(body)
	s.messages = append(s.messages, m)
	s.bySID[m.SID] = m
	close(s.arrivedCh)
	s.arrivedCh = make(chan struct{})
	resource := s.resource(m)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, resource)
}

func (s *Server) fetch(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	sid, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	s.mu.Lock()
	m, found := s.bySID[sid]
	var resource map[string]any
	if found {
		resource = s.resource(m)
	}
	s.mu.Unlock()
	if !ok || !found {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	writeJSON(w, http.StatusOK, resource)
}

// resource renders m like Twilio's Message resource. Callers hold s.mu.
func (s *Server) resource(m *message) map[string]any {
	uri := "/2010-04-01/Accounts/" + s.accountSID + "/Messages/" + m.SID + ".json"
	date := m.dateCreated.Format(time.RFC1123Z)
	var from, service, errorCode any
	if m.From != "" {
		from = m.From
	}
	if m.MessagingServiceSID != "" {
		service = m.MessagingServiceSID
	}
	if m.errorCode != 0 {
		errorCode = m.errorCode
	}
	return map[string]any{
		"account_sid":           s.accountSID,
		"api_version":           "2010-04-01",
		"body":                  m.Body,
		"date_created":          date,
		"date_sent":             nil,
		"date_updated":          date,
		"direction":             "outbound-api",
		"error_code":            errorCode,
		"error_message":         nil,
		"from":                  from,
		"messaging_service_sid": service,
		"num_media":             "0",
		"num_segments":          strconv.Itoa(m.segments),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   m.SID,
		"status":                m.status,
		"subresource_uris":      map[string]string{"media": strings.TrimSuffix(uri, ".json") + "/Media.json"},
		"to":                    m.To,
		"uri":                   uri,
	}
}

func (s *Server) popFailure() (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.outageEnd) {
		s.rejected++
		return s.outage, true
	}
	if len(s.failures) == 0 {
		return failure{}, false
	}
	s.rejected++
	f := s.failures[0]
	s.failures = s.failures[1:]
	return f, true
}

func writeFailure(w http.ResponseWriter, f failure) {
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((f.retryAfter+time.Second-1)/time.Second)))
	}
	if f.code == 0 {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", f.status, f.message)
		return
	}
	writeError(w, f.status, f.code, f.message)
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, map[string]any{
		"code":      code,
		"message":   message,
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		"status":    status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func validCallback(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func newSID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "SM" + hex.EncodeToString(b)
}
