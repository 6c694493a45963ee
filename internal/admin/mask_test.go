package admin

import (
	"testing"
	"time"
)

func TestMaskRecipient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ channel, to, want string }{
		{"email", "anna@example.org", "a***@e***.org"},
		{"email", "anna.schmidt@mail.example.co.uk", "a***@m***.uk"},
		{"email", "ü@bücher.de", "ü***@b***.de"},
		{"email", "x@localhost", "x***@l***"},
		{"email", "not-an-address", "***"},
		{"sms", "+4915112345678", "+49******678"},
		{"sms", "+12025550123", "+12******123"},
		{"sms", "+4912", "******"},
	} {
		if got := maskRecipient(tc.channel, tc.to); got != tc.want {
			t.Errorf("maskRecipient(%s, %q) = %q, want %q", tc.channel, tc.to, got, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	l := newLimiter(2, time.Minute)
	t0 := time.Unix(1_800_000_000, 0)
	for _, step := range []struct {
		addr  string
		at    time.Duration
		fail  bool
		allow bool
	}{
		{"203.0.113.1", 0, true, true},
		{"203.0.113.1", time.Second, true, true},
		{"203.0.113.1", 2 * time.Second, false, false}, // two failures within the minute
		{"203.0.113.2", 2 * time.Second, false, true},  // another address is not affected
		{"203.0.113.1", 61 * time.Second, false, true}, // the first failure has aged out
	} {
		now := t0.Add(step.at)
		if got := l.allow(step.addr, now); got != step.allow {
			t.Errorf("%s at %v: allow = %v, want %v", step.addr, step.at, got, step.allow)
		}
		if step.fail {
			l.fail(step.addr, now)
		}
	}
}
