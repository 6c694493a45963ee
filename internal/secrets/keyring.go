// Package secrets encrypts credentials (OAuth tokens, CalDAV passwords) before
// they are stored, so a copy of the database alone reveals none of them.
//
// Each value becomes an envelope, a short ASCII string for a TEXT column:
//
//	v1:<key id>:<base64url, unpadded, of nonce(12) || ciphertext || tag(16)>
//
// The cipher is AES-256-GCM with a random 96-bit nonce per value. The key id
// (the first 8 hex characters of sha256 of the key) says which key sealed the
// value, so keys can rotate: a Keyring encrypts with its current key and
// decrypts with the current key or any old one. Callers pass associated data
// (e.g. the connection id) that must match on decryption, so a ciphertext
// copied to another row does not decrypt there.
//
// Files: keyring.go holds the Keyring and the envelope format; load.go finds
// the keys for the daemon (TERMIND_SECRET_KEY, old keys, or a generated key
// file in embedded mode).
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// KeySize is the length of every key in bytes (AES-256).
const KeySize = 32

// Errors of Decrypt and Reencrypt; test them with errors.Is.
var (
	// ErrUnknownKey means the envelope names a key id the keyring lacks,
	// usually because an old key is missing from TERMIND_SECRET_KEYS_OLD.
	ErrUnknownKey = errors.New("envelope was encrypted under a key that is not configured")
	// ErrDecrypt means the envelope is malformed, was altered, or was sealed
	// with other associated data. It deliberately says no more than that.
	ErrDecrypt = errors.New("envelope is malformed, altered or bound to other associated data")
)

// envelopeVersion prefixes every envelope so the format can change later
// without guessing.
const envelopeVersion = "v1"

// idLen is the length of a key id in hex characters.
const idLen = 8

// b64 is strict so that every change to the text changes the decoded bytes;
// a lenient decoder would ignore altered padding bits in the last character.
var b64 = base64.RawURLEncoding.Strict()

// Keyring holds one current key, used to encrypt, and any number of old keys,
// used only to decrypt. It keeps no raw key bytes, only the ciphers built
// from them, and is immutable, so it is safe for concurrent use.
type Keyring struct {
	currentID string
	oldIDs    []string
	aeads     map[string]cipher.AEAD // by key id, current and old
	// signing is derived from the current key, so that one configured
	// secret also yields MAC keys (OAuth state) without reusing the
	// encryption key itself for a second purpose.
	signing []byte
}

// KeyID returns the id stored in envelopes sealed with key: the first 8 hex
// characters of sha256(key). It identifies a key without revealing it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:])[:idLen]
}

// NewKeyring returns a keyring that encrypts with current and also decrypts
// with old. Every key must be KeySize bytes. An old key equal to current or
// to another old key is ignored.
func NewKeyring(current []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[string]cipher.AEAD, 1+len(old))}
	seen := make(map[string][sha256.Size]byte, 1+len(old)) // id → full hash
	id, err := k.add(current, seen)
	if err != nil {
		return nil, fmt.Errorf("secrets: current key: %w", err)
	}
	k.currentID = id
	mac := hmac.New(sha256.New, current)
	mac.Write([]byte("termind signing keys v1"))
	k.signing = mac.Sum(nil)
	for i, key := range old {
		id, err := k.add(key, seen)
		if err != nil {
			return nil, fmt.Errorf("secrets: old key %d: %w", i+1, err)
		}
		if id != "" {
			k.oldIDs = append(k.oldIDs, id)
		}
	}
	return k, nil
}

// SigningKey returns a 32-byte MAC key for one purpose (e.g.
// "oauth-state"), derived from the current key: different purposes get
// independent keys, and rotating the current key rotates them too.
func (k *Keyring) SigningKey(purpose string) []byte {
	mac := hmac.New(sha256.New, k.signing)
	mac.Write([]byte(purpose))
	return mac.Sum(nil)
}

// add builds the cipher for key and returns its id, or "" if the keyring
// already holds that key.
func (k *Keyring) add(key []byte, seen map[string][sha256.Size]byte) (string, error) {
	if len(key) != KeySize {
		return "", fmt.Errorf("must be %d bytes, got %d", KeySize, len(key))
	}
	sum := sha256.Sum256(key)
	id := KeyID(key)
	if prev, ok := seen[id]; ok {
		if prev != sum {
			// Two keys sharing 32 bits of hash: envelopes could not say which
			// one sealed them. Astronomically rare, but never guess.
			return "", fmt.Errorf("key id %s is also the id of another key; generate a new key", id)
		}
		return "", nil
	}
	seen[id] = sum
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return "", err
	}
	k.aeads[id] = aead
	return id, nil
}

// CurrentID returns the id of the key that Encrypt uses.
func (k *Keyring) CurrentID() string { return k.currentID }

// OldIDs returns the ids of the decrypt-only keys.
func (k *Keyring) OldIDs() []string { return slices.Clone(k.oldIDs) }

// String names the keys by id only, so printing or logging a Keyring is safe.
func (k *Keyring) String() string {
	return fmt.Sprintf("secrets.Keyring{current: %s, old: %v}", k.currentID, k.oldIDs)
}

// Encrypt seals plaintext under the current key and binds it to aad (nil and
// empty are the same). Encrypting the same plaintext twice gives different
// envelopes.
func (k *Keyring) Encrypt(plaintext, aad []byte) (string, error) {
	if k == nil || k.aeads[k.currentID] == nil {
		return "", errors.New("secrets: encrypt: keyring has no key; build it with NewKeyring")
	}
	sealed := k.aeads[k.currentID].Seal(nil, nil, plaintext, boundAAD(k.currentID, aad))
	return header(k.currentID) + b64.EncodeToString(sealed), nil
}

// Decrypt opens an envelope made by Encrypt with the same aad. It returns
// ErrUnknownKey if the envelope's key is not in the keyring and ErrDecrypt
// for anything else that is wrong.
func (k *Keyring) Decrypt(envelope string, aad []byte) ([]byte, error) {
	id, body, ok := parse(envelope)
	if !ok {
		return nil, fmt.Errorf("secrets: decrypt: %w", ErrDecrypt)
	}
	aead := k.aeads[id]
	if aead == nil {
		return nil, fmt.Errorf("secrets: decrypt: key id %s: %w", id, ErrUnknownKey)
	}
	sealed, err := b64.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("secrets: decrypt: %w", ErrDecrypt)
	}
	plaintext, err := aead.Open(nil, nil, sealed, boundAAD(id, aad))
	if err != nil {
		return nil, fmt.Errorf("secrets: decrypt: %w", ErrDecrypt)
	}
	if plaintext == nil {
		plaintext = []byte{}
	}
	return plaintext, nil
}

// NeedsRotation reports whether envelope was not sealed with the current
// key. It reads only the header: a malformed header counts as needing
// rotation, and Reencrypt then reports the envelope as broken.
func (k *Keyring) NeedsRotation(envelope string) bool {
	id, _, ok := parse(envelope)
	return !ok || id != k.currentID
}

// Reencrypt decrypts envelope with whichever key sealed it and encrypts the
// plaintext again under the current key, with the same aad. The plaintext
// never leaves this call.
func (k *Keyring) Reencrypt(envelope string, aad []byte) (string, error) {
	plaintext, err := k.Decrypt(envelope, aad)
	if err != nil {
		return "", err
	}
	defer clear(plaintext)
	return k.Encrypt(plaintext, aad)
}

func header(id string) string { return envelopeVersion + ":" + id + ":" }

// boundAAD authenticates the envelope's header together with the caller's
// aad, so the version and key id cannot be edited either. The header has a
// fixed length, so the concatenation is unambiguous.
func boundAAD(id string, aad []byte) []byte {
	h := header(id)
	b := make([]byte, 0, len(h)+len(aad))
	return append(append(b, h...), aad...)
}

// parse splits an envelope into key id and base64 body. ok is false unless
// the version is known and the id has the shape KeyID produces.
func parse(envelope string) (id, body string, ok bool) {
	version, rest, found := strings.Cut(envelope, ":")
	if !found || version != envelopeVersion {
		return "", "", false
	}
	id, body, found = strings.Cut(rest, ":")
	if !found || len(id) != idLen || strings.Trim(id, "0123456789abcdef") != "" {
		return "", "", false
	}
	return id, body, true
}

// keyRule is the part of every key error that tells the operator what to do.
const keyRule = "must be 32 random bytes written as 64 hex characters or as base64 (generate one with: openssl rand -hex 32)"

// ParseKey decodes a key as given in TERMIND_SECRET_KEY: 64 hex characters,
// or base64 (standard or URL alphabet, padded or not) of exactly 32 bytes.
// Surrounding whitespace is ignored. Errors never contain the value.
func ParseKey(s string) ([]byte, error) {
	return parseKey("TERMIND_SECRET_KEY", s)
}

// parseKey is ParseKey with the name of the variable or file the value came
// from, so errors point at the right place.
func parseKey(name, s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("secrets: %s: is empty; it %s", name, keyRule)
	}
	// Hex first: no 32-byte base64 text is also valid hex (43 characters is
	// odd, 44 ends in '='), so the order never misreads a good key.
	key, err := hex.DecodeString(s)
	if err == nil {
		return checkKeyLen(name, "hex", key)
	}
	if len(s) == 2*KeySize {
		// Meant as hex; reading it as base64 would only confuse the message.
		return nil, fmt.Errorf("secrets: %s: has 64 characters but is not valid hex; it %s", name, keyRule)
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if key, err := enc.DecodeString(s); err == nil {
			return checkKeyLen(name, "base64", key)
		}
	}
	return nil, fmt.Errorf("secrets: %s: is neither hex nor base64; it %s", name, keyRule)
}

func checkKeyLen(name, encoding string, key []byte) ([]byte, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets: %s: decodes as %s to %d bytes; it %s", name, encoding, len(key), keyRule)
	}
	return key, nil
}
