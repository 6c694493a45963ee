package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func textLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func writeFile(t *testing.T, path, content string, perm os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode passes through the umask; tests need the exact mode.
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

const generatedWarning = "generated a new encryption key"

func TestLoadFromEnvironment(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := testKey("1"), testKey("2"), testKey("3")
	cases := []struct {
		name        string
		env         func(dir string) map[string]string
		wantCurrent []byte
		wantOld     [][]byte
	}{
		{
			name:        "variable, hex",
			env:         func(string) map[string]string { return map[string]string{EnvKey: hex.EncodeToString(k1)} },
			wantCurrent: k1,
		},
		{
			name: "variable with old keys, mixed encodings",
			env: func(string) map[string]string {
				return map[string]string{
					EnvKey:     base64.StdEncoding.EncodeToString(k2),
					EnvOldKeys: hex.EncodeToString(k1) + ", " + base64.RawURLEncoding.EncodeToString(k3) + ",",
				}
			},
			wantCurrent: k2,
			wantOld:     [][]byte{k1, k3},
		},
		{
			name: "_FILE variables, old keys one per line",
			env: func(dir string) map[string]string {
				return map[string]string{
					EnvKey + "_FILE":     writeFile(t, filepath.Join(dir, "key"), hex.EncodeToString(k3)+"\n", 0o400),
					EnvOldKeys + "_FILE": writeFile(t, filepath.Join(dir, "old"), hex.EncodeToString(k1)+"\n"+hex.EncodeToString(k2)+"\n", 0o400),
				}
			},
			wantCurrent: k3,
			wantOld:     [][]byte{k1, k2},
		},
		{
			name: "empty _FILE variable is unset",
			env: func(string) map[string]string {
				return map[string]string{EnvKey: hex.EncodeToString(k1), EnvKey + "_FILE": "", EnvOldKeys: ""}
			},
			wantCurrent: k1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "termind.key")
			var logged bytes.Buffer
			ring, err := Load(envOf(tc.env(dir)), keyFile, textLogger(&logged))
			if err != nil {
				t.Fatal(err)
			}
			var wantOld []string
			for _, k := range tc.wantOld {
				wantOld = append(wantOld, KeyID(k))
			}
			if ring.CurrentID() != KeyID(tc.wantCurrent) || !slices.Equal(ring.OldIDs(), wantOld) {
				t.Fatalf("ids = %s %v, want %s %v", ring.CurrentID(), ring.OldIDs(), KeyID(tc.wantCurrent), wantOld)
			}
			// The keys really are the configured ones, not just their ids.
			env := mustEncrypt(t, mustKeyring(t, tc.wantCurrent), "token", "conn-1")
			if got, err := ring.Decrypt(env, []byte("conn-1")); err != nil || string(got) != "token" {
				t.Fatalf("Decrypt = %q, %v", got, err)
			}
			if _, err := os.Stat(keyFile); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("key file created although a key was configured: %v", err)
			}
			if !strings.Contains(logged.String(), ring.CurrentID()) || strings.Contains(logged.String(), generatedWarning) {
				t.Fatalf("log = %q, want the key id and no generated-key warning", logged.String())
			}
			assertNoSecret(t, logged.String(), [][]byte{k1, k2, k3})
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey("1"), testKey("2")
	short := testKey("short")[:31]
	cases := []struct {
		name    string
		env     func(dir string) map[string]string
		keyFile func(dir string) string
		want    []string
	}{
		{
			name: "variable and _FILE both set",
			env: func(dir string) map[string]string {
				return map[string]string{
					EnvKey:           hex.EncodeToString(k1),
					EnvKey + "_FILE": writeFile(t, filepath.Join(dir, "key"), hex.EncodeToString(k2), 0o600),
				}
			},
			want: []string{"TERMIND_SECRET_KEY and TERMIND_SECRET_KEY_FILE", "set only one"},
		},
		{
			name: "old keys variable and _FILE both set",
			env: func(dir string) map[string]string {
				return map[string]string{
					EnvKey:               hex.EncodeToString(k1),
					EnvOldKeys:           hex.EncodeToString(k2),
					EnvOldKeys + "_FILE": writeFile(t, filepath.Join(dir, "old"), hex.EncodeToString(k2), 0o600),
				}
			},
			want: []string{"TERMIND_SECRET_KEYS_OLD and TERMIND_SECRET_KEYS_OLD_FILE", "set only one"},
		},
		{
			name: "_FILE missing",
			env: func(dir string) map[string]string {
				return map[string]string{EnvKey + "_FILE": filepath.Join(dir, "nope")}
			},
			want: []string{"TERMIND_SECRET_KEY_FILE", "no such file"},
		},
		{
			name: "variable too short",
			env: func(string) map[string]string {
				return map[string]string{EnvKey: hex.EncodeToString(short)}
			},
			want: []string{"TERMIND_SECRET_KEY:", "31 bytes", "64 hex characters"},
		},
		{
			name: "_FILE holds a passphrase",
			env: func(dir string) map[string]string {
				return map[string]string{EnvKey + "_FILE": writeFile(t, filepath.Join(dir, "key"), "hunter2 hunter2\n", 0o600)}
			},
			want: []string{"TERMIND_SECRET_KEY_FILE:", "neither hex nor base64"},
		},
		{
			name: "second old key bad",
			env: func(string) map[string]string {
				return map[string]string{
					EnvKey:     hex.EncodeToString(k1),
					EnvOldKeys: hex.EncodeToString(k2) + "," + hex.EncodeToString(short),
				}
			},
			want: []string{"TERMIND_SECRET_KEYS_OLD entry 2", "31 bytes"},
		},
		{
			name: "old keys without a current key",
			env: func(string) map[string]string {
				return map[string]string{EnvOldKeys: hex.EncodeToString(k1)}
			},
			want: []string{"TERMIND_SECRET_KEYS_OLD is set but TERMIND_SECRET_KEY is not"},
		},
		{
			name:    "nothing set and no key file",
			keyFile: func(string) string { return "" },
			want:    []string{"TERMIND_SECRET_KEY is not set and no key file was given"},
		},
		{
			name: "key file holds garbage",
			keyFile: func(dir string) string {
				return writeFile(t, filepath.Join(dir, "termind.key"), "not-a-key\n", 0o600)
			},
			want: []string{"key file", "termind.key", "neither hex nor base64"},
		},
		{
			name: "key file empty",
			keyFile: func(dir string) string {
				return writeFile(t, filepath.Join(dir, "termind.key"), "", 0o600)
			},
			want: []string{"termind.key", "is empty"},
		},
		{
			name:    "key file directory missing",
			keyFile: func(dir string) string { return filepath.Join(dir, "missing", "termind.key") },
			want:    []string{"secrets: create key file", "no such file"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := map[string]string{}
			if tc.env != nil {
				env = tc.env(dir)
			}
			keyFile := filepath.Join(dir, "termind.key")
			if tc.keyFile != nil {
				keyFile = tc.keyFile(dir)
			}
			var logged bytes.Buffer
			ring, err := Load(envOf(env), keyFile, textLogger(&logged))
			if err == nil {
				t.Fatalf("Load = %v, want an error", ring)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not contain %q", err, want)
				}
			}
			assertNoSecret(t, err.Error()+logged.String(), [][]byte{k1, k2, short}, "hunter2", "not-a-key")
		})
	}
}

func TestLoadGeneratesKeyFileOnceAndReusesIt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
	}{
		{"no variables", nil},
		{"empty variables", map[string]string{EnvKey: "", EnvKey + "_FILE": "", EnvOldKeys: ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keyFile := filepath.Join(t.TempDir(), "termind.key")

			var firstLog bytes.Buffer
			first, err := Load(envOf(tc.env), keyFile, textLogger(&firstLog))
			if err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode = %v, want 0600", info.Mode().Perm())
			}
			content, err := os.ReadFile(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			key, err := ParseKey(string(content))
			if err != nil {
				t.Fatalf("generated key file does not parse: %v", err)
			}
			if KeyID(key) != first.CurrentID() {
				t.Fatalf("keyring uses %s, key file holds %s", first.CurrentID(), KeyID(key))
			}
			if n := strings.Count(firstLog.String(), generatedWarning); n != 1 || !strings.Contains(firstLog.String(), "level=WARN") ||
				!strings.Contains(firstLog.String(), "back up") || !strings.Contains(firstLog.String(), keyFile) {
				t.Fatalf("first start log = %q, want one warning to back up %s", firstLog.String(), keyFile)
			}
			assertNoSecret(t, firstLog.String(), [][]byte{key}, strings.TrimSpace(string(content)))
			env := mustEncrypt(t, first, "token", "conn-1")

			var secondLog bytes.Buffer
			second, err := Load(envOf(tc.env), keyFile, textLogger(&secondLog))
			if err != nil {
				t.Fatal(err)
			}
			if second.CurrentID() != first.CurrentID() {
				t.Fatalf("second start uses key %s, first used %s", second.CurrentID(), first.CurrentID())
			}
			if got, err := second.Decrypt(env, []byte("conn-1")); err != nil || string(got) != "token" {
				t.Fatalf("second start: Decrypt = %q, %v", got, err)
			}
			if strings.Contains(secondLog.String(), "level=WARN") {
				t.Fatalf("second start warned: %q", secondLog.String())
			}
			assertNoSecret(t, secondLog.String(), [][]byte{key}, strings.TrimSpace(string(content)))
		})
	}
}

func TestLoadConcurrentFirstStartsAgreeOnOneKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		starts int
	}{
		{"two processes", 2},
		{"many processes", 32},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "termind.key")
			var logged bytes.Buffer // slog's handler serialises writes
			logger := textLogger(&logged)

			ids := make([]string, tc.starts)
			errs := make([]error, tc.starts)
			var start, done sync.WaitGroup
			start.Add(1)
			for i := range tc.starts {
				done.Go(func() {
					start.Wait()
					ring, err := Load(envOf(nil), keyFile, logger)
					errs[i] = err
					if err == nil {
						ids[i] = ring.CurrentID()
					}
				})
			}
			start.Done()
			done.Wait()

			for i, err := range errs {
				if err != nil {
					t.Fatalf("start %d: %v", i, err)
				}
				if ids[i] != ids[0] {
					t.Fatalf("starts ended with different keys: %v", ids)
				}
			}
			if n := strings.Count(logged.String(), generatedWarning); n != 1 {
				t.Fatalf("%d generated-key warnings, want 1: %q", n, logged.String())
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != "termind.key" {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Fatalf("directory holds %v, want only termind.key", names)
			}
		})
	}
}

func TestLoadWarnsAboutReadableKeyFile(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	key := testKey("perm")
	cases := []struct {
		name     string
		perm     os.FileMode
		wantWarn bool
	}{
		{"owner only", 0o600, false},
		{"owner read-only", 0o400, false},
		{"group readable", 0o640, true},
		{"world readable", 0o644, true},
		{"other writable", 0o602, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keyFile := writeFile(t, filepath.Join(t.TempDir(), "termind.key"), hex.EncodeToString(key)+"\n", tc.perm)
			var logged bytes.Buffer
			ring, err := Load(envOf(nil), keyFile, textLogger(&logged))
			if err != nil {
				t.Fatal(err)
			}
			if ring.CurrentID() != KeyID(key) {
				t.Fatalf("CurrentID = %s, want the key file's %s", ring.CurrentID(), KeyID(key))
			}
			warned := strings.Contains(logged.String(), "level=WARN") && strings.Contains(logged.String(), "chmod 600")
			if warned != tc.wantWarn {
				t.Fatalf("warned = %v, want %v; log: %q", warned, tc.wantWarn, logged.String())
			}
			if strings.Contains(logged.String(), generatedWarning) {
				t.Fatalf("existing key file reported as generated: %q", logged.String())
			}
			assertNoSecret(t, logged.String(), [][]byte{key})
		})
	}
}

func TestLoadAcceptsNilLogger(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
	}{
		{"generated key file", nil},
		{"variable", map[string]string{EnvKey: hex.EncodeToString(testKey("1"))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ring, err := Load(envOf(tc.env), filepath.Join(t.TempDir(), "termind.key"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ring.Encrypt([]byte("token"), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}
