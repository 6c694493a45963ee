package google_test

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/google"
)

func TestState(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	otherKey := []byte("fedcba9876543210fedcba9876543210")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	base := google.State{
		TenantID:      "tn_1",
		SubjectID:     "patient-42",
		Purposes:      []string{google.PurposeReadBusy, google.PurposeWrite},
		RedirectAfter: "https://praxis.example/settings/calendar",
		Expires:       now.Add(10 * time.Minute),
	}
	signed, err := google.SignState(key, base)
	if err != nil {
		t.Fatalf("SignState: %v", err)
	}
	body, mac, _ := strings.Cut(signed, ".")

	// flip changes one character of a base64url string.
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	forged := func() string {
		// A payload that claims another subject, with the old MAC.
		s := base
		s.SubjectID = "patient-43"
		other, err := google.SignState(otherKey, s)
		if err != nil {
			t.Fatal(err)
		}
		b, _, _ := strings.Cut(other, ".")
		return b + "." + mac
	}()

	tests := []struct {
		name  string
		token string
		key   []byte
		now   time.Time
		want  error
	}{
		{"round trip", signed, key, now, nil},
		{"last second", signed, key, base.Expires.Add(-time.Second), nil},
		{"expired", signed, key, base.Expires, google.ErrStateExpired},
		{"other key", signed, otherKey, now, google.ErrStateInvalid},
		{"tampered payload", flip(body, 5) + "." + mac, key, now, google.ErrStateInvalid},
		{"swapped payload", forged, key, now, google.ErrStateInvalid},
		{"tampered MAC", body + "." + flip(mac, 3), key, now, google.ErrStateInvalid},
		{"truncated MAC", body + "." + mac[:20], key, now, google.ErrStateInvalid},
		{"no MAC", body, key, now, google.ErrStateInvalid},
		{"empty", "", key, now, google.ErrStateInvalid},
		{"dots only", "..", key, now, google.ErrStateInvalid},
		{"not base64", "!!!.???", key, now, google.ErrStateInvalid},
		{"huge", strings.Repeat("A", 10000) + "." + mac, key, now, google.ErrStateInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := google.VerifyState(tc.key, tc.token, tc.now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("VerifyState = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if !reflect.DeepEqual(got, google.State{}) {
					t.Errorf("a failed VerifyState returned %+v", got)
				}
				return
			}
			want := base
			want.Nonce = got.Nonce
			if !reflect.DeepEqual(got, want) {
				t.Errorf("VerifyState = %+v, want %+v", got, want)
			}
			raw, err := base64.RawURLEncoding.DecodeString(got.Nonce)
			if err != nil || len(raw) != 16 {
				t.Errorf("Nonce %q is not 128 bits of base64url", got.Nonce)
			}
		})
	}
}

func TestStateNonce(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	s := google.State{TenantID: "t", SubjectID: "s", Expires: now.Add(time.Minute)}
	a, err := google.SignState(key, s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := google.SignState(key, s)
	if err != nil {
		t.Fatal(err)
	}
	sa, errA := google.VerifyState(key, a, now)
	sb, errB := google.VerifyState(key, b, now)
	if errA != nil || errB != nil || sa.Nonce == sb.Nonce {
		t.Errorf("two states got nonces %q and %q (%v, %v), want fresh random ones", sa.Nonce, sb.Nonce, errA, errB)
	}
	s.Nonce = google.NewNonce()
	c, err := google.SignState(key, s)
	if err != nil {
		t.Fatal(err)
	}
	if sc, err := google.VerifyState(key, c, now); err != nil || sc.Nonce != s.Nonce {
		t.Errorf("a given nonce came back as %q (%v), want %q", sc.Nonce, err, s.Nonce)
	}
}

func TestSignStateRefuses(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	exp := time.Now().Add(time.Minute)
	tests := []struct {
		name string
		key  []byte
		s    google.State
	}{
		{"short key", key[:16], google.State{TenantID: "t", SubjectID: "s", Expires: exp}},
		{"no tenant", key, google.State{SubjectID: "s", Expires: exp}},
		{"no subject", key, google.State{TenantID: "t", Expires: exp}},
		{"no expiry", key, google.State{TenantID: "t", SubjectID: "s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := google.SignState(tc.key, tc.s)
			if err == nil || tok != "" || !strings.HasPrefix(err.Error(), "google: sign state: ") {
				t.Errorf("SignState = %q, %v; want a google: sign state error", tok, err)
			}
		})
	}
}
