package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// forEachDialect runs fn as a parallel subtest per dialect with a fresh store.
func forEachDialect(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, storetest.New(t, d))
		})
	}
}

// testCtx is bounded so that a hung database fails the test instead of the run.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// item builds a notification request for CreateNotifications.
func item(tenantID, key string, sendAt time.Time) store.Notification {
	return store.Notification{
		TenantID:       tenantID,
		SubjectID:      "subj-" + key,
		IdempotencyKey: key,
		RequestHash:    "hash-" + key,
		Purpose:        store.PurposeTransactional,
		Channel:        store.ChannelEmail,
		Recipient:      "person@example.org",
		Locale:         "de",
		Template:       "confirmation",
		Data:           json.RawMessage(`{"customer_name":"A"}`),
		SendAt:         sendAt,
	}
}

// create stores one notification and fails unless it is new.
func create(t *testing.T, s *store.Store, n store.Notification) store.Notification {
	t.Helper()
	res, err := s.CreateNotifications(testCtx(t), []store.Notification{n})
	if err != nil {
		t.Fatalf("CreateNotifications: %v", err)
	}
	if len(res) != 1 || res[0].Outcome != store.Created {
		t.Fatalf("CreateNotifications: got %+v, want one Created", res)
	}
	return res[0].Notification
}

// claim claims n and fails unless the claim succeeds.
func claim(t *testing.T, s *store.Store, id string, now time.Time) store.Notification {
	t.Helper()
	n, ok, err := s.ClaimNotification(testCtx(t), id, now, now.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("ClaimNotification(%s) = ok %v, err %v", id, ok, err)
	}
	return n
}

func keyN(i int) string { return fmt.Sprintf("key-%04d", i) }
