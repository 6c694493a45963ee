package admin

import "testing"

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
