package secrets

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// testKey returns a fixed, distinct key per seed so failures reproduce.
func testKey(seed string) []byte {
	sum := sha256.Sum256([]byte("termind test key " + seed))
	return sum[:]
}

func mustKeyring(t testing.TB, current []byte, old ...[]byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEncrypt(t testing.TB, k *Keyring, plaintext, aad string) string {
	t.Helper()
	env, err := k.Encrypt([]byte(plaintext), []byte(aad))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// assertNoSecret fails if text contains any key in its usual spellings or
// any of the plaintexts.
func assertNoSecret(t testing.TB, text string, keys [][]byte, plaintexts ...string) {
	t.Helper()
	for _, key := range keys {
		for _, form := range []string{
			hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)),
			base64.StdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key),
		} {
			if strings.Contains(text, form) {
				t.Fatalf("output contains key material: %q", text)
			}
		}
	}
	for _, p := range plaintexts {
		if p != "" && strings.Contains(text, p) {
			t.Fatalf("output contains plaintext %q: %q", p, text)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	key := testKey("a")
	k := mustKeyring(t, key)
	cases := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", nil, nil},
		{"oauth refresh token", []byte("1//0gRefreshTokenValue-abc_def"), []byte("conn-1")},
		{"caldav password without aad", []byte("correct horse battery staple"), nil},
		{"binary", []byte{0, 1, 0xfe, 0xff, '\n', ':'}, []byte{0, ':'}},
		{"large", bytes.Repeat([]byte("x"), 1<<16), []byte("conn-2")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := k.Encrypt(tc.plaintext, tc.aad)
			if err != nil {
				t.Fatal(err)
			}
			if want := "v1:" + KeyID(key) + ":"; !strings.HasPrefix(env, want) {
				t.Fatalf("envelope %q does not start with %q", env[:min(len(env), 20)], want)
			}
			// Safe for a TEXT column and for logs of the row: plain ASCII, no separators.
			for _, r := range env {
				if r <= ' ' || r > '~' {
					t.Fatalf("envelope contains %q", r)
				}
			}
			assertNoSecret(t, env, [][]byte{key}, string(tc.plaintext))
			got, err := k.Decrypt(env, tc.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Decrypt = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

func TestKeyIDIsSHA256Prefix(t *testing.T) {
	t.Parallel()
	cases := []struct{ seed string }{{"a"}, {"b"}, {"c"}}
	for _, tc := range cases {
		t.Run(tc.seed, func(t *testing.T) {
			t.Parallel()
			key := testKey(tc.seed)
			sum := sha256.Sum256(key)
			// Operators can reproduce it: xxd -r -p <key | sha256sum | cut -c1-8
			want := hex.EncodeToString(sum[:])[:8]
			if got := KeyID(key); got != want {
				t.Fatalf("KeyID = %q, want %q", got, want)
			}
			if got := mustKeyring(t, key).CurrentID(); got != want {
				t.Fatalf("CurrentID = %q, want %q", got, want)
			}
		})
	}
}

func TestEncryptUsesAFreshNonceEachTime(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, testKey("a"))
	cases := []struct {
		name      string
		plaintext string
	}{
		{"empty", ""},
		{"token", "same token every time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			envelopes := map[string]bool{}
			nonces := map[string]bool{}
			for range 200 {
				env := mustEncrypt(t, k, tc.plaintext, "conn-1")
				envelopes[env] = true
				_, body, _ := parse(env)
				sealed, err := b64.DecodeString(body)
				if err != nil {
					t.Fatal(err)
				}
				nonces[string(sealed[:12])] = true
			}
			if len(envelopes) != 200 || len(nonces) != 200 {
				t.Fatalf("200 encryptions gave %d envelopes and %d nonces, want 200 each", len(envelopes), len(nonces))
			}
		})
	}
}

func TestDecryptRejectsOtherAssociatedData(t *testing.T) {
	t.Parallel()
	key := testKey("a")
	k := mustKeyring(t, key)
	const secret = "caldav-password-123"
	cases := []struct {
		name       string
		sealedWith []byte
		openedWith []byte
	}{
		{"other connection", []byte("conn-1"), []byte("conn-2")},
		{"prefix of aad", []byte("conn-10"), []byte("conn-1")},
		{"aad extended", []byte("conn-1"), []byte("conn-10")},
		{"aad dropped", []byte("conn-1"), nil},
		{"aad added", nil, []byte("conn-1")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := k.Encrypt([]byte(secret), tc.sealedWith)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Decrypt(env, tc.openedWith)
			if !errors.Is(err, ErrDecrypt) || errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Decrypt = %q, %v; want ErrDecrypt", got, err)
			}
			if got != nil {
				t.Fatalf("Decrypt returned plaintext %q with an error", got)
			}
			assertNoSecret(t, err.Error(), [][]byte{key}, secret)
			if _, err := k.Reencrypt(env, tc.openedWith); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Reencrypt error = %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestDecryptDetectsEveryFlippedBit(t *testing.T) {
	t.Parallel()
	key := testKey("a")
	k := mustKeyring(t, key)
	const secret = "refresh-token"
	env := mustEncrypt(t, k, secret, "conn-1")
	idStart, idEnd := len("v1:"), len("v1:")+8
	cases := []struct {
		name string
		mask byte
	}{
		{"low bit", 0x01},
		{"case bit", 0x20},
		{"high bit", 0x80},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for i := range len(env) {
				b := []byte(env)
				b[i] ^= tc.mask
				_, err := k.Decrypt(string(b), []byte("conn-1"))
				// A changed key id may still look like an id, just not ours.
				ok := errors.Is(err, ErrDecrypt) ||
					(i >= idStart && i < idEnd && errors.Is(err, ErrUnknownKey))
				if !ok {
					t.Fatalf("byte %d flipped: err = %v, want ErrDecrypt", i, err)
				}
				assertNoSecret(t, err.Error(), [][]byte{key}, secret)
			}
		})
	}
}

func TestDecryptRejectsMalformedEnvelopes(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, testKey("a"))
	env := mustEncrypt(t, k, "token", "")
	id := k.CurrentID()
	_, body, _ := parse(env)
	cases := []struct {
		name      string
		envelope  string
		badHeader bool // NeedsRotation can tell without decrypting
	}{
		{"empty", "", true},
		{"plaintext stored by mistake", "token", true},
		{"version only", "v1", true},
		{"no body separator", "v1:" + id, true},
		{"unknown version", "v2:" + id + ":" + body, true},
		{"upper-case id", "v1:" + strings.ToUpper(id) + ":" + body, true},
		{"short id", "v1:" + id[:7] + ":" + body, true},
		{"whitespace", " " + env, true},
		{"empty body", "v1:" + id + ":", false},
		{"truncated by one character", env[:len(env)-1], false},
		{"extended by one character", env + "A", false},
		{"padded base64", env + "=", false},
		{"standard alphabet characters", env + "+/", false},
		{"shorter than nonce and tag", "v1:" + id + ":" + b64.EncodeToString(make([]byte, 27)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := k.Decrypt(tc.envelope, nil); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Decrypt(%q) error = %v, want ErrDecrypt", tc.envelope, err)
			}
			if _, err := k.Reencrypt(tc.envelope, nil); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Reencrypt(%q) error = %v, want ErrDecrypt", tc.envelope, err)
			}
			if tc.badHeader && !k.NeedsRotation(tc.envelope) {
				t.Fatalf("NeedsRotation(%q) = false for a malformed header", tc.envelope)
			}
		})
	}
}

func TestDecryptUnknownKey(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := testKey("1"), testKey("2"), testKey("3")
	env := mustEncrypt(t, mustKeyring(t, k1), "token", "conn-1")
	cases := []struct {
		name string
		ring *Keyring
	}{
		{"other current key", mustKeyring(t, k2)},
		{"other current and old keys", mustKeyring(t, k2, k3)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.ring.Decrypt(env, []byte("conn-1"))
			if !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrDecrypt) {
				t.Fatalf("err = %v, want ErrUnknownKey", err)
			}
			// The id tells the operator which old key to add back.
			if !strings.Contains(err.Error(), KeyID(k1)) {
				t.Fatalf("error %q does not name key id %s", err, KeyID(k1))
			}
			assertNoSecret(t, err.Error(), [][]byte{k1, k2, k3}, "token")
			if _, err := tc.ring.Reencrypt(env, []byte("conn-1")); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Reencrypt error = %v, want ErrUnknownKey", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey("1"), testKey("2")
	cases := []struct {
		name      string
		plaintext string
		aad       string
	}{
		{"google token", "ya29.access-and-refresh", "conn-7"},
		{"empty password", "", "conn-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			oldRing := mustKeyring(t, k1)
			env := mustEncrypt(t, oldRing, tc.plaintext, tc.aad)
			if oldRing.NeedsRotation(env) {
				t.Fatal("NeedsRotation = true under the key that sealed it")
			}

			rotating := mustKeyring(t, k2, k1)
			if got, err := rotating.Decrypt(env, []byte(tc.aad)); err != nil || string(got) != tc.plaintext {
				t.Fatalf("rotating keyring: Decrypt = %q, %v", got, err)
			}
			if !rotating.NeedsRotation(env) {
				t.Fatal("NeedsRotation = false for an envelope under an old key")
			}
			rotated, err := rotating.Reencrypt(env, []byte(tc.aad))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(rotated, "v1:"+KeyID(k2)+":") {
				t.Fatalf("Reencrypt gave %q, want an envelope under %s", rotated, KeyID(k2))
			}
			if rotating.NeedsRotation(rotated) {
				t.Fatal("NeedsRotation = true after Reencrypt")
			}

			// Once every row is rotated, the old key can be dropped.
			newRing := mustKeyring(t, k2)
			if got, err := newRing.Decrypt(rotated, []byte(tc.aad)); err != nil || string(got) != tc.plaintext {
				t.Fatalf("keyring with only the new key: Decrypt = %q, %v", got, err)
			}
			if _, err := newRing.Decrypt(env, []byte(tc.aad)); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("old envelope under the new keyring: err = %v, want ErrUnknownKey", err)
			}
		})
	}
}

func TestNewKeyring(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey("1"), testKey("2")
	cases := []struct {
		name    string
		current []byte
		old     [][]byte
		wantErr string
		wantOld []string
	}{
		{"current only", k1, nil, "", nil},
		{"repeated old keys are kept once", k1, [][]byte{k1, k2, k2}, "", []string{KeyID(k2)}},
		{"current missing", nil, nil, "current key: must be 32 bytes, got 0", nil},
		{"current 31 bytes", k1[:31], nil, "current key: must be 32 bytes, got 31", nil},
		{"current 33 bytes", append(slices.Clone(k1), 0), nil, "current key: must be 32 bytes, got 33", nil},
		{"second old key short", k1, [][]byte{k2, k2[:16]}, "old key 2: must be 32 bytes, got 16", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := NewKeyring(tc.current, tc.old...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				assertNoSecret(t, err.Error(), [][]byte{k1, k2, k1[:31], k2[:16]})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.CurrentID() != KeyID(tc.current) || !slices.Equal(k.OldIDs(), tc.wantOld) {
				t.Fatalf("ids = %s %v, want %s %v", k.CurrentID(), k.OldIDs(), KeyID(tc.current), tc.wantOld)
			}
		})
	}
}

func TestZeroKeyringDoesNotEncrypt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ring *Keyring
	}{
		{"nil", nil},
		{"zero value", &Keyring{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if env, err := tc.ring.Encrypt([]byte("token"), nil); err == nil || env != "" {
				t.Fatalf("Encrypt = %q, %v; want an error", env, err)
			}
		})
	}
}

func TestKeyringPrintsOnlyKeyIDs(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey("1"), testKey("2")
	ring := mustKeyring(t, k2, k1)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("loaded", "keyring", ring)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("loaded", "keyring", ring)
	cases := []struct {
		name string
		out  string
	}{
		{"%v", fmt.Sprintf("%v", ring)},
		{"%+v", fmt.Sprintf("%+v", ring)},
		{"%#v", fmt.Sprintf("%#v", ring)},
		{"%s", fmt.Sprintf("%s", ring)}, //lint:ignore S1025 the case is what the %s verb prints
		{"%v of value", fmt.Sprintf("%v", *ring)},
		{"slog", logged.String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertNoSecret(t, tc.out, [][]byte{k1, k2})
		})
	}
	if s := ring.String(); !strings.Contains(s, KeyID(k2)) || !strings.Contains(s, KeyID(k1)) {
		t.Fatalf("String() = %q, want both key ids", s)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	// Leading bytes chosen so the standard and URL alphabets differ ("+/" vs "-_").
	key := append([]byte{0xfb, 0xff, 0xbf}, testKey("p")[:29]...)
	std := base64.StdEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("test key %q does not exercise the alphabets", std)
	}
	accepted := []struct {
		name  string
		input string
	}{
		{"hex", hex.EncodeToString(key)},
		{"upper-case hex", strings.ToUpper(hex.EncodeToString(key))},
		{"base64 standard padded", std},
		{"base64 standard unpadded", base64.RawStdEncoding.EncodeToString(key)},
		{"base64 url padded", base64.URLEncoding.EncodeToString(key)},
		{"base64 url unpadded", base64.RawURLEncoding.EncodeToString(key)},
		{"trailing newline from a file", hex.EncodeToString(key) + "\n"},
		{"surrounding spaces", "  " + std + " \r\n"},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKey(tc.input)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, key) {
				t.Fatalf("ParseKey(%q) = %x, want %x", tc.input, got, key)
			}
		})
	}

	short, long := testKey("s")[:31], append(testKey("l"), 0x42)
	rejected := []struct {
		name  string
		input string
		want  string
	}{
		{"empty", "", "is empty"},
		{"blank", " \n", "is empty"},
		{"31 bytes hex", hex.EncodeToString(short), "decodes as hex to 31 bytes"},
		{"33 bytes hex", hex.EncodeToString(long), "decodes as hex to 33 bytes"},
		{"31 bytes base64", base64.StdEncoding.EncodeToString(short), "decodes as base64 to 31 bytes"},
		{"33 bytes base64 url", base64.RawURLEncoding.EncodeToString(long), "decodes as base64 to 33 bytes"},
		{"garbage", "this is not a key!", "neither hex nor base64"},
		{"hex with a stray character", hex.EncodeToString(key)[:63] + "g", "not valid hex"},
		{"passphrase", "correct horse battery staple", "neither hex nor base64"},
	}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKey(tc.input)
			if err == nil {
				t.Fatalf("ParseKey(%q) = %x, want an error", tc.input, got)
			}
			msg := err.Error()
			for _, want := range []string{"TERMIND_SECRET_KEY", tc.want, "32 random bytes", "64 hex characters", "base64"} {
				if !strings.Contains(msg, want) {
					t.Fatalf("error %q does not contain %q", msg, want)
				}
			}
			assertNoSecret(t, msg, [][]byte{key, short, long}, strings.TrimSpace(tc.input))
		})
	}
}

func BenchmarkEncrypt(b *testing.B) {
	k := mustKeyring(b, testKey("bench"))
	token := bytes.Repeat([]byte("t"), 256) // about an OAuth refresh token
	aad := []byte("conn-00000000-0000-0000-0000-000000000000")
	b.SetBytes(int64(len(token)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Encrypt(token, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := mustKeyring(b, testKey("bench"))
	token := bytes.Repeat([]byte("t"), 256)
	aad := []byte("conn-00000000-0000-0000-0000-000000000000")
	env, err := k.Encrypt(token, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(token)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Decrypt(env, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSigningKeys(t *testing.T) {
	t.Parallel()
	k1 := bytes.Repeat([]byte{1}, KeySize)
	k2 := bytes.Repeat([]byte{2}, KeySize)
	a, err := NewKeyring(k1)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := NewKeyring(k1, k2)
	rotated, _ := NewKeyring(k2, k1)
	state := a.SigningKey("oauth-state")
	switch {
	case len(state) != 32:
		t.Fatalf("signing key is %d bytes, want 32", len(state))
	case !bytes.Equal(state, again.SigningKey("oauth-state")):
		t.Error("same current key gave a different signing key")
	case bytes.Equal(state, a.SigningKey("other")):
		t.Error("two purposes share a key")
	case bytes.Equal(state, rotated.SigningKey("oauth-state")):
		t.Error("rotating the current key kept the signing key")
	case bytes.Equal(state, k1):
		t.Error("signing key equals the encryption key")
	}
}
