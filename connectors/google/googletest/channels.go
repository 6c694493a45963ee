package googletest

// Push notification channels: events.watch, channels.stop, and the
// delivery of notifications to the channels' addresses.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/api/calendar/v3"
)

// DefaultChannelTTL is the lifetime of a channel created without a ttl
// param, as Google documents it for the Calendar API.
const DefaultChannelTTL = 7 * 24 * time.Hour

// deliveryTimeout bounds each notification POST: deliveries go one at a
// time, so a receiver that hangs holds up the queue at most this long.
const deliveryTimeout = 2 * time.Second

// Channel is a live (unexpired, unstopped) notification channel.
type Channel struct {
	ID         string
	ResourceID string
	Token      string
	Address    string
	Expiration time.Time
}

// Delivery is one notification sent to a channel's address.
type Delivery struct {
	ChannelID string
	State     string // sync, exists or not_exists
	Status    int    // HTTP status of the answer, 0 when there was none
	Err       string // transport error, "" when the receiver answered
}

type channel struct {
	Channel
	calendarID  string
	resourceURI string
	stopped     bool
	messages    int64 // last X-Goog-Message-Number
	created     int64 // order of creation
}

// notification is one POST waiting to be delivered.
type notification struct {
	address string
	header  http.Header
	d       Delivery
}

// notifier delivers notifications one after another in the order they
// were queued, so that a receiver sees message numbers increase. It has
// its own lock: delivering never holds the Server's.
type notifier struct {
	client *http.Client
	record func(Delivery)

	mu      sync.Mutex
	idle    *sync.Cond // signalled when pending drops to 0
	queue   []notification
	pending int
	running bool
}

func newNotifier(record func(Delivery)) *notifier {
	// A transport of its own, so that closing its idle connections
	// at the end of the test leaves nothing behind.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	n := &notifier{client: &http.Client{Transport: tr, Timeout: deliveryTimeout}, record: record}
	n.idle = sync.NewCond(&n.mu)
	return n
}

func (n *notifier) enqueue(m notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.queue = append(n.queue, m)
	n.pending++
	if !n.running {
		n.running = true
		go n.run()
	}
}

func (n *notifier) run() {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.running = false
			n.mu.Unlock()
			return
		}
		m := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()

		n.record(n.deliver(m))

		n.mu.Lock()
		n.pending--
		if n.pending == 0 {
			n.idle.Broadcast()
		}
		n.mu.Unlock()
	}
}

func (n *notifier) deliver(m notification) Delivery {
	d := m.d
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.address, http.NoBody)
	if err != nil {
		d.Err = err.Error()
		return d
	}
	req.Header = m.header
	resp, err := n.client.Do(req)
	if err != nil {
		d.Err = err.Error()
		return d
	}
	_ = resp.Body.Close()
	d.Status = resp.StatusCode
	return d
}

// wait blocks until every queued notification has been delivered.
func (n *notifier) wait() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for n.pending > 0 {
		n.idle.Wait()
	}
}

// close waits for the queue to drain and drops idle connections.
func (n *notifier) close() {
	n.wait()
	n.client.CloseIdleConnections()
}

// WaitNotifications blocks until every notification queued so far has
// been delivered (or has failed), so that tests can look at Deliveries or
// at their receiver without polling.
func (s *Server) WaitNotifications() { s.cal.notify.wait() }

// Channels returns the calendar's live channels, oldest first.
func (s *Server) Channels(calendarID string) []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Channel
	for _, ch := range s.sortedChannels() {
		if ch.calendarID == calendarID && s.live(ch) {
			out = append(out, ch.Channel)
		}
	}
	return out
}

// Deliveries returns the notifications delivered so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cal.deliveries)
}

// StoppedChannels returns the ids of the channels stopped by
// channels.stop, in order.
func (s *Server) StoppedChannels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cal.stopped)
}

func (s *Server) recordDelivery(d Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cal.deliveries = append(s.cal.deliveries, d)
}

// live: not stopped and not expired by the fake's clock. The caller holds
// s.mu.
func (s *Server) live(ch *channel) bool {
	return !ch.stopped && s.now().Before(ch.Expiration)
}

// sortedChannels orders channels by creation (message order across
// channels does not matter, but tests read them in a stable order). The
// caller holds s.mu.
func (s *Server) sortedChannels() []*channel {
	out := make([]*channel, 0, len(s.cal.channels))
	for _, ch := range s.cal.channels {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].created < out[j].created })
	return out
}

func (s *Server) watchEvents(w http.ResponseWriter, r *http.Request) {
	var req calendar.Channel
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "parseError", "Parse Error")
		return
	}
	switch {
	case req.Id == "":
		apiError(w, http.StatusBadRequest, "required", "Required")
		return
	case len(req.Id) > 64:
		// Google documents a maximum of 64 characters.
		apiError(w, http.StatusBadRequest, "invalid", "Channel id must be at most 64 characters.")
		return
	case req.Type != "web_hook" && req.Type != "webhook":
		pushError(w, "push.channelTypeNotSupported", "Push notification type "+strconv.Quote(req.Type)+" is not supported.")
		return
	}
	if u, err := url.Parse(req.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// Google wants https; the fake lets loopback test receivers
		// use http.
		pushError(w, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: "+req.Address)
		return
	}
	ttl := DefaultChannelTTL
	if v, ok := req.Params["ttl"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			apiError(w, http.StatusBadRequest, "invalid", "Invalid ttl value: "+v)
			return
		}
		ttl = time.Duration(n) * time.Second
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calendarOf(w, r)
	if c == nil {
		return
	}
	expires := s.now().Add(ttl)
	if _, ok := req.Params["ttl"]; !ok && req.Expiration > 0 {
		// The caller may ask for an expiration time instead; Google
		// does not go beyond its default lifetime.
		expires = time.UnixMilli(req.Expiration)
		if limit := s.now().Add(DefaultChannelTTL); expires.After(limit) {
			expires = limit
		}
	}
	if old := s.cal.channels[req.Id]; old != nil && s.live(old) {
		apiError(w, http.StatusBadRequest, "channelIdNotUnique", "Channel id "+req.Id+" not unique")
		return
	}
	s.cal.channelSeq++
	ch := &channel{
		Channel: Channel{
			ID:         req.Id,
			ResourceID: c.resourceID,
			Token:      req.Token,
			Address:    req.Address,
			Expiration: expires.Truncate(time.Millisecond),
		},
		calendarID:  c.id,
		resourceURI: s.APIURL() + "calendars/" + url.PathEscape(c.id) + "/events?alt=json",
		created:     s.cal.channelSeq,
	}
	s.cal.channels[ch.ID] = ch
	s.queueNotification(ch, "sync")
	writeAPIJSON(w, http.StatusOK, "", &calendar.Channel{
		Kind:        "api#channel",
		Id:          ch.ID,
		ResourceId:  ch.ResourceID,
		ResourceUri: ch.resourceURI,
		Token:       ch.Token,
		Expiration:  ch.Expiration.UnixMilli(),
	})
}

// pushError is a 400 of Google's "push" error domain.
func pushError(w http.ResponseWriter, reason, message string) {
	writeAPIError(w, http.StatusBadRequest, apiErrorItem{Domain: "push", Reason: reason, Message: message}, message)
}

func (s *Server) stopChannel(w http.ResponseWriter, r *http.Request) {
	var req calendar.Channel
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "parseError", "Parse Error")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.cal.channels[req.Id]
	if ch == nil || ch.stopped || ch.ResourceID != req.ResourceId {
		apiError(w, http.StatusNotFound, "notFound", "Channel '"+req.Id+"' not found for project")
		return
	}
	ch.stopped = true
	s.cal.stopped = append(s.cal.stopped, ch.ID)
	w.WriteHeader(http.StatusNoContent)
}

// notifyChange tells every live channel of c that its events changed. The
// caller holds s.mu.
func (s *Server) notifyChange(c *calendarData) {
	for _, ch := range s.sortedChannels() {
		if ch.calendarID == c.id && s.live(ch) {
			s.queueNotification(ch, "exists")
		}
	}
}

// queueNotification numbers a message of ch and queues it. The caller
// holds s.mu; the notifier's lock nests inside it and delivery happens
// later on the notifier's goroutine.
func (s *Server) queueNotification(ch *channel, state string) {
	ch.messages++
	h := http.Header{}
	h.Set("X-Goog-Channel-ID", ch.ID)
	if ch.Token != "" {
		h.Set("X-Goog-Channel-Token", ch.Token)
	}
	h.Set("X-Goog-Channel-Expiration", ch.Expiration.UTC().Format(http.TimeFormat))
	h.Set("X-Goog-Resource-ID", ch.ResourceID)
	h.Set("X-Goog-Resource-URI", ch.resourceURI)
	h.Set("X-Goog-Resource-State", state)
	h.Set("X-Goog-Message-Number", strconv.FormatInt(ch.messages, 10))
	s.cal.notify.enqueue(notification{
		address: ch.Address,
		header:  h,
		d:       Delivery{ChannelID: ch.ID, State: state},
	})
}
