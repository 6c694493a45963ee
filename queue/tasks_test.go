package queue

import (
	"testing"
	"time"
)

func TestNotifyPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	task, err := NewNotifyTask("abc", 2)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeNotifySend {
		t.Errorf("type = %q", task.Type())
	}
	p, err := ParseNotifyPayload(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if p != (NotifyPayload{NotificationID: "abc", Attempt: 2}) {
		t.Errorf("payload = %+v", p)
	}
	if got := string(task.Payload()); got != `{"notification_id":"abc","attempt":2}` {
		t.Errorf("wire payload = %s (ids only, stable field names)", got)
	}
	if id := NotifyTaskID("abc", 2); id != "notify:abc:2" {
		t.Errorf("task id = %q", id)
	}
	if _, err := NewNotifyTask("", 0); err == nil {
		t.Error("empty id accepted")
	}
}

func TestParseNotifyPayloadRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{``, `{`, `{}`, `{"notification_id":""}`, `{"notification_id":"x","attempt":-1}`} {
		if _, err := ParseNotifyPayload([]byte(in)); err == nil {
			t.Errorf("ParseNotifyPayload(%q) succeeded", in)
		}
	}
}

func TestRetryDelayGrowsWithinBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{0, 500 * time.Millisecond, time.Second},
		{1, time.Second, 2 * time.Second},
		{5, 16 * time.Second, 32 * time.Second},
		{20, 5 * time.Minute, 10 * time.Minute},
		{100, 5 * time.Minute, 10 * time.Minute},
	}
	for _, tt := range tests {
		for range 50 {
			d := RetryDelay(tt.n, nil, nil)
			if d < tt.min || d >= tt.max {
				t.Fatalf("RetryDelay(%d) = %s, want in [%s, %s)", tt.n, d, tt.min, tt.max)
			}
		}
	}
}
