package sms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/termind/termind/internal/spool"
)

// Dir "sends" by writing each message to <dir>/<ID>.json. It is the default
// when no Twilio account is configured.
type Dir struct {
	dir string
}

// DirRecord is the content of a .json file written by Dir.
type DirRecord struct {
	ID             string    `json:"id"`
	SID            string    `json:"sid"`
	To             string    `json:"to"`
	From           string    `json:"from"`
	Body           string    `json:"body"`
	Segments       int       `json:"segments"`
	Encoding       string    `json:"encoding"`
	StatusCallback string    `json:"status_callback,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// NewDir creates dir if needed.
func NewDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("sms: delivery directory is empty")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("sms: create delivery directory: %w", err)
	}
	return &Dir{dir: dir}, nil
}

// Send writes m atomically (temporary file, then rename) and returns a SID
// derived from m.ID, so writing the same notification again gives the same
// SID and replaces the file. From is empty: no sender is configured.
func (d *Dir) Send(ctx context.Context, m Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", classify(err, &exchange{}, err)
	}
	if err := checkID(m.ID); err != nil {
		return "", err
	}
	if m.To == "" || m.Body == "" {
		return "", &Error{ProviderCode: CodeInvalid, Err: errors.New("sms: message needs To and Body")}
	}
	sum := sha256.Sum256([]byte(m.ID))
	rec := DirRecord{
		ID:             m.ID,
		SID:            "SM" + hex.EncodeToString(sum[:16]),
		To:             m.To,
		Body:           m.Body,
		StatusCallback: m.StatusCallback,
		CreatedAt:      time.Now().UTC(),
	}
	rec.Segments, rec.Encoding = Segments(m.Body)
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", &Error{ProviderCode: CodeInvalid, Err: fmt.Errorf("sms: encode: %w", err)}
	}
	if err := spool.Write(d.dir, m.ID+".json", append(data, '\n')); err != nil {
		return "", &Error{ProviderCode: CodeIO, Transient: true, Err: fmt.Errorf("sms: write .json file: %w", err)}
	}
	return rec.SID, nil
}

// checkID refuses ids that are unsafe as a file name.
func checkID(id string) error {
	if !spool.ValidName(id) {
		return &Error{ProviderCode: CodeInvalid, Err: errors.New("sms: message ID must be letters, digits, '-', '_' or '.', not starting with '.'")}
	}
	return nil
}
