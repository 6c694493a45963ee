package sms_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/sms"
)

func TestDirWritesParseableJSON(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "deliveries")
	d, err := sms.NewDir(dir)
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	m := reminder()
	sid, err := d.Send(ctxT(t), m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, m.ID+".json"))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("parse: %v", err)
	}
	for k, want := range map[string]any{
		"id": m.ID, "sid": sid, "to": m.To, "body": m.Body, "status_callback": m.StatusCallback,
		"segments": float64(1), "encoding": "GSM-7", "from": "",
	} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %v", k, rec[k], want)
		}
	}
	created, err := time.Parse(time.RFC3339Nano, rec["created_at"].(string))
	if err != nil || time.Since(created) > time.Minute {
		t.Errorf("created_at = %v (%v)", rec["created_at"], err)
	}
	// Same notification, same SID; no temporary files left behind.
	again, err := d.Send(ctxT(t), m)
	if err != nil || again != sid {
		t.Errorf("second Send = %q, %v; want %q", again, err, sid)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
	for _, id := range []string{"", "../x", ".hidden", "a/b"} {
		bad := m
		bad.ID = id
		_, err := d.Send(ctxT(t), bad)
		if temp, code, _ := classification(t, err); temp || code != "invalid" {
			t.Errorf("id %q: Temporary, Code = %v, %q; want false, invalid", id, temp, code)
		}
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		want     int
		encoding string
	}{
		{"empty", "", 0, "GSM-7"},
		{"short non-GSM", "Dzień dobry, wizyta jutro o 10:00", 1, "UCS-2"}, // ń is not in GSM 03.38
		{"German umlauts are GSM-7", "Grüße aus Köln, Ärztin Müller, bestätigt", 1, "GSM-7"},
		{"160 GSM", strings.Repeat("a", 160), 1, "GSM-7"},
		{"161 GSM", strings.Repeat("a", 161), 2, "GSM-7"},
		{"306 GSM", strings.Repeat("a", 306), 2, "GSM-7"},
		{"307 GSM", strings.Repeat("a", 307), 3, "GSM-7"},
		{"80 euro signs", strings.Repeat("€", 80), 1, "GSM-7"},
		{"81 euro signs", strings.Repeat("€", 81), 2, "GSM-7"},
		{"escape not split", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), 3, "GSM-7"},
		{"70 UCS-2", strings.Repeat("ł", 70), 1, "UCS-2"},
		{"71 UCS-2", strings.Repeat("ł", 71), 2, "UCS-2"},
		{"134 UCS-2", strings.Repeat("ł", 134), 2, "UCS-2"},
		{"135 UCS-2", strings.Repeat("ł", 135), 3, "UCS-2"},
		{"emoji counts two units", strings.Repeat("😀", 35), 1, "UCS-2"},
		{"surrogate pair not split", strings.Repeat("ł", 66) + "😀" + strings.Repeat("ł", 66), 3, "UCS-2"},
	}
	for _, tc := range tests {
		got, enc := sms.Segments(tc.body)
		if got != tc.want || enc != tc.encoding {
			t.Errorf("%s: Segments = %d, %s; want %d, %s", tc.name, got, enc, tc.want, tc.encoding)
		}
	}
}
