package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func batchJSON(t *testing.T, items ...any) string {
	t.Helper()
	return mustJSON(t, map[string]any{"items": items})
}

func TestBatchMixedItems(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		previous := e.createOK(mustJSON(t, emailRequest("before")))
		e.queue.tasks = nil

		body := `{"items": [` + strings.Join([]string{
			mustJSON(t, emailRequest("b0")),                                                   // 0 created
			mustJSON(t, with(emailRequest("b1"), "to", "not-an-address")),                     // 1 invalid
			mustJSON(t, smsRequest("b2")),                                                     // 2 created
			mustJSON(t, emailRequest("b0")),                                                   // 3 same key, same body
			mustJSON(t, with(emailRequest("b0"), "to", "john@example.com")),                   // 4 same key, other body
			`{"idempotency_key": 7}`,                                                          // 5 wrong type
			mustJSON(t, emailRequest("before")),                                               // 6 replay of an earlier request
			mustJSON(t, with(emailRequest("b7"), "data", with(templateData(), "start", nil))), // 7 renderer refuses
			`"just a string"`,                                                                 // 8 not an object
			mustJSON(t, with(emailRequest("b9"), "data", with(templateData(), "service", strings.Repeat("x", 65<<10)))), // 9 too large
			mustJSON(t, with(emailRequest("b10"), "extra", true)),                                                       // 10 unknown field
		}, ",") + `]}`

		w := e.do("POST", "/v1/notifications/batch", e.token, body)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d, body %s", w.Code, w.Body)
		}
		var got batchResponse
		decodeBody(t, w, &got)
		if len(got.Items) != 11 {
			t.Fatalf("%d results, want 11", len(got.Items))
		}
		want := []struct {
			code  int
			err   string
			field string
		}{
			{202, "", ""},
			{422, "invalid_field", "items[1].to"},
			{202, "", ""},
			{200, "", ""},
			{409, "idempotency_key_reused", "items[4].idempotency_key"},
			{400, "wrong_type", "items[5].idempotency_key"},
			{200, "", ""},
			{422, "invalid_field", "items[7].data.start"},
			{400, "malformed_json", "items[8]"},
			{413, "too_large", "items[9]"},
			{400, "unknown_field", "items[10].extra"},
		}
		for i, w := range want {
			it := got.Items[i]
			if it.Index != i || it.StatusCode != w.code {
				t.Errorf("item %d: index %d status %d, want %d", i, it.Index, it.StatusCode, w.code)
				continue
			}
			if w.err == "" {
				if it.ID == "" || it.Status != "scheduled" || it.Error != nil {
					t.Errorf("item %d: %+v, want an id and status scheduled", i, it)
				}
				continue
			}
			if it.Error == nil || it.Error.Code != w.err || it.Error.Field != w.field || it.Error.Message == "" {
				t.Errorf("item %d: error %+v, want code %s field %s", i, it.Error, w.err, w.field)
			}
		}
		if got.Items[3].ID != got.Items[0].ID {
			t.Errorf("duplicate key inside the batch: id %q, want %q", got.Items[3].ID, got.Items[0].ID)
		}
		if got.Items[6].ID != previous {
			t.Errorf("replay of an earlier request: id %q, want %q", got.Items[6].ID, previous)
		}
		if rows := e.countRows("notifications"); rows != 3 {
			t.Errorf("%d rows, want 3 (1 earlier + 2 new)", rows)
		}
		if calls := e.counter.createCalls(); calls != 2 {
			t.Errorf("CreateNotifications called %d times, want 2 (one for the earlier request, one for the batch)", calls)
		}
		q := e.queue.all()
		enq := map[string]bool{}
		for _, task := range q {
			enq[task.ID] = true
		}
		if len(q) != 2 || !enq[got.Items[0].ID] || !enq[got.Items[2].ID] {
			t.Errorf("enqueued %+v, want exactly items 0 and 2", q)
		}
	})
}

func TestBatchRefusesWholeRequest(t *testing.T) {
	t.Parallel()
	item := emailRequest("x")
	many := func(n int) string {
		items := make([]any, n)
		for i := range items {
			items[i] = with(item, "idempotency_key", fmt.Sprintf("k%d", i))
		}
		return batchJSON(t, items...)
	}
	cases := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"1,001 items", many(1001), 422, "invalid_field", "items"},
		{"no items", `{"items": []}`, 422, "invalid_field", "items"},
		{"items missing", `{}`, 422, "invalid_field", "items"},
		{"items not an array", `{"items": {}}`, 400, "wrong_type", "items"},
		{"unknown top-level field", `{"items": [], "dry_run": true}`, 400, "unknown_field", "dry_run"},
		{"syntax error", `{"items": [`, 400, "malformed_json", ""},
		{"body over 8 MiB", `{"items": ["` + strings.Repeat("x", 8<<20) + `"]}`, 413, "too_large", "body"},
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				w := e.do("POST", "/v1/notifications/batch", e.token, c.body)
				wantError(t, w, c.status, c.code, c.field)
				if rows := e.countRows("notifications"); rows != 0 {
					t.Errorf("%d rows stored, want 0", rows)
				}
				if q := e.queue.all(); len(q) != 0 {
					t.Errorf("%d tasks enqueued, want 0", len(q))
				}
			})
		}
	})
}

// TestBatchOfAThousand checks that a full batch is one store call and
// finishes well within the time a booking system waits.
func TestBatchOfAThousand(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		items := make([]any, 1000)
		for i := range items {
			m := smsRequest(fmt.Sprintf("bulk-%04d", i))
			m["subject_id"] = fmt.Sprintf("cust-%d", i%50)
			m["send_at"] = e.now.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
			items[i] = m
		}
		body := batchJSON(t, items...)
		start := time.Now()
		w := e.do("POST", "/v1/notifications/batch", e.token, body)
		elapsed := time.Since(start)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var got batchResponse
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		for _, it := range got.Items {
			if it.StatusCode != 202 {
				t.Fatalf("item %d: %+v", it.Index, it)
			}
		}
		if rows := e.countRows("notifications"); rows != 1000 {
			t.Errorf("%d rows, want 1000", rows)
		}
		if calls := e.counter.createCalls(); calls != 1 {
			t.Errorf("CreateNotifications called %d times, want 1", calls)
		}
		if q := e.queue.all(); len(q) != 1000 {
			t.Errorf("%d tasks enqueued, want 1000", len(q))
		}
		// Generous for -race on a busy machine; the point is "not per-item round trips".
		if elapsed > 20*time.Second {
			t.Errorf("1,000 items took %v", elapsed)
		}
		t.Logf("%s: 1,000 items in %v", dialect, elapsed)
	})
}

// batchQueue is a queue that takes due notifications in batches, as
// queue.Client does.
type batchQueue struct {
	recordingQueue
	batches [][]string
}

func (q *batchQueue) EnqueueNotificationBatch(_ context.Context, ids []string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.batches = append(q.batches, append([]string(nil), ids...))
	return nil
}

func TestBatchEnqueuesDueItemsTogether(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		q := &batchQueue{}
		e := newEnv(t, dialect, func(_ *Config, d *Deps) { d.Queue = q })
		later := emailRequest("later")
		later["send_at"] = e.now.Add(time.Hour).Format(time.RFC3339)
		w := e.do("POST", "/v1/notifications/batch", e.token, batchJSON(t, emailRequest("now-1"), later, emailRequest("now-2")))
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var got batchResponse
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		if len(q.batches) != 1 || len(q.batches[0]) != 2 || q.batches[0][0] != got.Items[0].ID || q.batches[0][1] != got.Items[2].ID {
			t.Errorf("batches %v, want one with the two due items %s, %s", q.batches, got.Items[0].ID, got.Items[2].ID)
		}
		if len(q.tasks) != 1 || q.tasks[0].ID != got.Items[1].ID || !q.tasks[0].At.Equal(e.now.Add(time.Hour).Truncate(time.Second)) {
			t.Errorf("single tasks %+v, want only the later item at its time", q.tasks)
		}
	})
}
