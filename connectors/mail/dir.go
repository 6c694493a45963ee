package mail

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/termind/termind/internal/spool"
)

// Dir "sends" by writing each message to <dir>/<ID>.eml, built exactly as
// SMTP would send it. It is the default when no SMTP server is configured.
type Dir struct {
	dir string
}

// NewDir creates dir if needed.
func NewDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, fmt.Errorf("mail: delivery directory is empty")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("mail: create delivery directory: %w", err)
	}
	return &Dir{dir: dir}, nil
}

// Send writes m atomically (temporary file, then rename), so readers never
// see a half-written file, and returns its Message-ID. Sending the same ID
// again replaces the file.
func (d *Dir) Send(ctx context.Context, m Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", classify("write", err, err, nil)
	}
	msg, messageID, err := build(m, time.Now())
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return "", &Error{Op: "write", ProviderCode: CodeInvalid, Reason: "render message", Err: err}
	}
	if err := spool.Write(d.dir, m.ID+".eml", buf.Bytes()); err != nil {
		return "", &Error{Op: "write", ProviderCode: CodeIO, Transient: true, Reason: "write .eml file", Err: err}
	}
	return messageID, nil
}
