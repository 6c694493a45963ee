package secrets

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unicode"
)

// Variables read by Load. Each may instead be given as NAME_FILE, a path
// whose content is the value, as container platforms mount secrets.
const (
	EnvKey     = "TERMIND_SECRET_KEY"      // the current key
	EnvOldKeys = "TERMIND_SECRET_KEYS_OLD" // decrypt-only keys, comma-separated
)

// Load builds the daemon's keyring. lookup has os.LookupEnv's shape.
//
// With TERMIND_SECRET_KEY (or _FILE) set, that is the current key and
// TERMIND_SECRET_KEYS_OLD (or _FILE) lists old keys to rotate away from.
// With neither set (embedded mode), the key lives in keyFile, e.g.
// termind.key beside the SQLite database: it is read if it exists and
// generated otherwise, with a warning that it must be backed up with the
// database. A nil logger discards messages. Nothing logged or returned
// contains key material.
func Load(lookup func(string) (string, bool), keyFile string, logger *slog.Logger) (*Keyring, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	current, currentFrom, err := readVar(lookup, EnvKey)
	if err != nil {
		return nil, err
	}
	oldList, oldFrom, err := readVar(lookup, EnvOldKeys)
	if err != nil {
		return nil, err
	}

	if currentFrom == "" {
		if oldFrom != "" {
			// Old keys alone cannot encrypt; silently generating a new key
			// beside them would hide the mistake.
			return nil, fmt.Errorf("secrets: %s is set but %s is not; old keys only decrypt, set the current key too", oldFrom, EnvKey)
		}
		if keyFile == "" {
			return nil, fmt.Errorf("secrets: %s is not set and no key file was given", EnvKey)
		}
		return loadKeyFile(keyFile, logger)
	}

	key, err := parseKey(currentFrom, current)
	if err != nil {
		return nil, err
	}
	var old [][]byte
	for i, s := range strings.FieldsFunc(oldList, isKeySeparator) {
		k, err := parseKey(fmt.Sprintf("%s entry %d", oldFrom, i+1), s)
		if err != nil {
			return nil, err
		}
		old = append(old, k)
	}
	kr, err := NewKeyring(key, old...)
	if err != nil {
		return nil, err
	}
	logger.Info("secrets: encryption keys loaded",
		"from", currentFrom, "current_key_id", kr.CurrentID(), "old_key_ids", kr.OldIDs())
	return kr, nil
}

// isKeySeparator splits old-key lists: commas in a variable, and also
// newlines, which are natural in a file.
func isKeySeparator(r rune) bool { return r == ',' || unicode.IsSpace(r) }

// readVar returns the value of name or of the file named by name_FILE, and
// which of the two it came from ("" if neither is set). Setting both is an
// error because one of them would silently win.
func readVar(lookup func(string) (string, bool), name string) (value, from string, err error) {
	fileVar := name + "_FILE"
	v, _ := lookup(name)
	path, _ := lookup(fileVar)
	switch {
	case v != "" && path != "":
		return "", "", fmt.Errorf("secrets: %s and %s: set only one", name, fileVar)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("secrets: %s: %w", fileVar, err)
		}
		return string(b), fileVar, nil
	case v != "":
		return v, name, nil
	}
	return "", "", nil
}

// loadKeyFile reads the embedded-mode key file, creating it on first start.
func loadKeyFile(path string, logger *slog.Logger) (*Keyring, error) {
	key, err := readKeyFile(path, logger)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(path, logger)
	}
	if err != nil {
		return nil, err
	}
	return NewKeyring(key)
}

func readKeyFile(path string, logger *slog.Logger) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: key file: %w", err)
	}
	// Windows has no Unix permission bits; its mode says nothing here.
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		logger.Warn("secrets: key file is accessible to group or others; restrict it to the owner with chmod 600",
			"key_file", path, "mode", perm.String())
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("secrets: key file: %w", err)
	}
	key, err := parseKey("key file "+path, string(b))
	if err != nil {
		return nil, err
	}
	logger.Info("secrets: using the encryption key from the key file; back it up together with the database",
		"key_file", path, "key_id", KeyID(key))
	return key, nil
}

// createKeyFile writes a new random key to path, unless another process
// starting at the same moment got there first; then it returns that key.
//
// The key is written to a temporary file and hard-linked to path. Linking
// fails if path exists, so creation is exclusive like O_EXCL, and path never
// exists half-written: a concurrent reader or a crash cannot leave an empty
// key file behind.
func createKeyFile(path string, logger *slog.Logger) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets: generate key: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("secrets: create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: create key file: %w", err)
	}

	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path, logger)
		}
		return nil, fmt.Errorf("secrets: create key file: %w", err)
	}
	// Without this, a power cut could lose the file's name while data
	// encrypted under the key is already in the database.
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("secrets: create key file: %w", err)
	}
	logger.Warn("secrets: generated a new encryption key; back up the key file together with the database, without it stored credentials cannot be decrypted",
		"key_file", path, "key_id", KeyID(key))
	return key, nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; NTFS journals the link
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
