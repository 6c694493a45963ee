package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrNoSealer: a secret was to be written or read before UseSealer.
var ErrNoSealer = errors.New("store: no sealer configured")

// Sealer encrypts credentials at rest (internal/secrets.Keyring).
type Sealer interface {
	Encrypt(plaintext, aad []byte) (string, error)
	Decrypt(envelope string, aad []byte) ([]byte, error)
	NeedsRotation(envelope string) bool
	Reencrypt(envelope string, aad []byte) (string, error)
}

// UseSealer sets how credentials are sealed; writing credentials without
// one is an error. Call it once after Open.
func (s *Store) UseSealer(k Sealer) {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	s.sealer = k
}

func (s *Store) currentSealer() (Sealer, error) {
	s.sealMu.RLock()
	defer s.sealMu.RUnlock()
	if s.sealer == nil {
		return nil, ErrNoSealer
	}
	return s.sealer, nil
}

// Associated data binds an envelope to the row it belongs to, so a sealed
// value copied into another row does not open.
func connectionAAD(id string) []byte    { return []byte(id) }
func oauthStateAAD(nonce string) []byte { return []byte("oauth:" + nonce) }

// rotateBatch is how many sealed values RotateSecrets rewrites per transaction.
const rotateBatch = 500

// RotateSecrets re-encrypts every sealed value not under the sealer's
// current key, in batches; it reports how many values were rewritten.
//
// Each batch is one transaction. A value changed concurrently (new
// credentials, a revocation clearing them) is left alone: the write
// compares the envelope it read. progress, if not nil, gets the running
// total after each batch.
func (s *Store) RotateSecrets(ctx context.Context, progress func(done int)) (int, error) {
	sealer, err := s.currentSealer()
	if err != nil {
		return 0, fmt.Errorf("rotate secrets: %w", err)
	}
	tables := []struct {
		name                 string
		key, value, nonEmpty string
		aad                  func(string) []byte
	}{
		{"connections", "id", "credentials", "credentials <> ''", connectionAAD},
		{"oauth_states", "nonce", "verifier", "verifier <> ''", oauthStateAAD},
	}
	done := 0
	for _, tb := range tables {
		after := ""
		for {
			var n, seen int
			err := s.inTx(ctx, func(tx *sql.Tx) error {
				var err error
				n, seen, after, err = s.rotateBatch(ctx, tx, sealer, tb.name, tb.key, tb.value, tb.nonEmpty, tb.aad, after)
				return err
			})
			if err != nil {
				return done, fmt.Errorf("rotate secrets: %s: %w", tb.name, err)
			}
			done += n
			if progress != nil {
				progress(done)
			}
			if seen < rotateBatch {
				break
			}
		}
	}
	return done, nil
}

// rotateBatch rewrites the stale envelopes among the next rotateBatch rows
// after the key `after`; it returns how many it rewrote, how many rows it
// looked at and the last key seen.
func (s *Store) rotateBatch(ctx context.Context, tx *sql.Tx, sealer Sealer, table, key, value, nonEmpty string,
	aad func(string) []byte, after string) (rewritten, seen int, last string, err error) {
	rows, err := tx.QueryContext(ctx, s.rebind("SELECT "+key+", "+value+" FROM "+table+
		" WHERE "+nonEmpty+" AND "+key+" > ? ORDER BY "+key+" LIMIT ?"), after, rotateBatch)
	if err != nil {
		return 0, 0, after, err
	}
	type stale struct{ key, old string }
	var todo []stale
	last = after
	for rows.Next() {
		var k, envelope string
		if err := rows.Scan(&k, &envelope); err != nil {
			rows.Close()
			return 0, 0, after, err
		}
		seen++
		last = k
		if sealer.NeedsRotation(envelope) {
			todo = append(todo, stale{k, envelope})
		}
	}
	if err := rows.Close(); err != nil {
		return 0, 0, after, err
	}
	if err := rows.Err(); err != nil {
		return 0, 0, after, err
	}
	for _, st := range todo {
		fresh, err := sealer.Reencrypt(st.old, aad(st.key))
		if err != nil {
			// The key names the row, never its content.
			return 0, 0, after, fmt.Errorf("%s %s: %w", key, st.key, err)
		}
		res, err := tx.ExecContext(ctx, s.rebind("UPDATE "+table+" SET "+value+" = ? WHERE "+key+" = ? AND "+value+" = ?"),
			fresh, st.key, st.old)
		if err != nil {
			return 0, 0, after, err
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			rewritten++
		}
	}
	return rewritten, seen, last, nil
}
