package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/connectors/google/googletest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// Sentinel values of the plaintext scan: distinctive enough that finding
// one anywhere means it was copied there.
const (
	scanMail     = "sentinel.qx7@mail-scan.example"
	scanPhone    = "+4915199988877"
	scanBody     = "Zephyrine Quaxbottom"
	scanPassword = "caldav-pw-Vq8nRk2mZt"
	scanSubject  = "scan-subj"
)

// personalAllowed says where the database may hold a sentinel address,
// phone or body: only the notification columns that must keep them until
// the retention purge (recipient, template data).
func personalAllowed(table, column string) bool {
	return table == "notifications" && (column == "recipient" || column == "data")
}

// lockedBuffer is a log sink safe for concurrent daemons.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNoPlaintextSecrets runs a full flow — mail and SMS notifications
// with a delivery callback, a scheduled notification, a CalDAV connection
// with push and pull, a Google connection — with sentinel values, then
// scans every table, every Redis key (taken after each step, so that
// queued payloads are seen too) and the daemon's log: no secret (password,
// OAuth token, API key, provider credentials) may appear in plaintext
// anywhere, and no address, phone number or message body in Redis or the
// log, nor in the database outside the notification rows.
func TestNoPlaintextSecrets(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			rad := caldavtest.StartRadicale(t)
			rad.AddUser(t, "scan", scanPassword)
			fake := googletest.Start(t)
			logs := &lockedBuffer{}
			st := newStackLogging(t, dialect, logs, func(c *config.Config) {
				c.CalDAVAllowPrivate = true
				c.GoogleClientID, c.GoogleClientSecret = fake.ClientID(), fake.ClientSecret()
				c.GoogleAuthURL, c.GoogleTokenURL, c.GoogleRevokeURL = fake.AuthURL(), fake.TokenURL(), fake.RevokeURL()
			})
			fake.RegisterRedirect(st.cfg.PublicURL + "/oauth/google/callback")
			rdb := redisOf(t, st.cfg.RedisURL)
			var redisSnaps []string
			snap := func() { redisSnaps = append(redisSnaps, dumpRedis(t, rdb)) }

			ingest, _, err := st.store.CreateAPIKey(t.Context(), st.tenant.ID, store.RoleIngest)
			if err != nil {
				t.Fatal(err)
			}
			st.grant(scanSubject, "notify.sms", "granted")

			data := confirmationData()
			data["customer_name"] = scanBody
			mailReq := mailRequest("scan-mail")
			mailReq["to"], mailReq["subject_id"], mailReq["data"] = scanMail, scanSubject, data
			smsReq := smsRequest("scan-sms")
			smsReq["to"], smsReq["subject_id"], smsReq["data"] = scanPhone, scanSubject, data
			later := mailRequest("scan-later")
			later["to"], later["subject_id"], later["data"] = scanMail, scanSubject, data
			later["send_at"] = time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)

			mailN, smsN := st.post(mailReq), st.post(smsReq)
			st.post(later)
			snap()
			st.waitStatus(mailN.ID, "sent")
			st.waitStatus(smsN.ID, "sent")
			msgs := st.twilio.WaitFor(t, 1, 10*time.Second)
			if err := st.twilio.SendStatus(t.Context(), msgs[0].SID, "delivered", 0); err != nil {
				t.Fatal(err)
			}
			st.waitStatus(smsN.ID, "delivered")
			snap()

			// CalDAV: connect, push an appointment (its notice goes to the
			// sentinel address too), pull.
			calURL := rad.MakeCalendar(t, "scan", "Praxis")
			var conn struct{ ID, State string }
			if code := st.do("POST", "/v1/connections/caldav", map[string]any{
				"subject_id": scanSubject, "url": calURL, "username": "scan", "password": scanPassword,
				"privacy": "full", "direction": "both",
				"consent": map[string]any{"purposes": []string{"calendar.read.busy", "calendar.read.details", "calendar.write"}, "policy_version": "2026-01"},
			}, &conn); code != http.StatusCreated {
				t.Fatalf("connect CalDAV: %d", code)
			}
			start := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Hour)
			appt := map[string]any{
				"subject_ids": []string{scanSubject}, "time_zone": "Europe/Berlin", "title": "Erstgespräch",
				"start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339),
				"notify": map[string]any{
					"recipients":    []any{map[string]any{"subject_id": scanSubject, "channel": "email", "to": scanMail, "locale": "de"}},
					"provider_name": "Praxis Dr. Weber", "service": "Erstgespräch", "customer_name": scanBody, "confirmation": true,
				},
			}
			if code := st.do("PUT", "/v1/appointments/apt-scan", appt, nil); code != http.StatusCreated {
				t.Fatalf("PUT appointment: %d", code)
			}
			snap()
			copyURL := rad.EventURL(t, calURL, "termind-apt-scan")
			waitFor(t, 30*time.Second, "our copy in Radicale", func() bool {
				status, _, _ := rad.Do(t, "scan", "GET", copyURL, nil, "")
				return status == http.StatusOK
			})
			if code := st.do("POST", "/v1/connections/"+conn.ID+"/sync", map[string]any{"full": true}, nil); code != http.StatusAccepted {
				t.Fatalf("sync now: %d", code)
			}
			snap()
			waitFor(t, 30*time.Second, "a finished sync", func() bool {
				var v struct {
					Sync *struct {
						LastFullAt string `json:"last_full_at"`
					} `json:"sync"`
				}
				st.do("GET", "/v1/connections/"+conn.ID, nil, &v)
				return v.Sync != nil && v.Sync.LastFullAt != ""
			})

			// Google: authorize, consent on the fake, come back.
			googleConn := st.connectGoogle(t, fake)
			raw, err := st.store.ConnectionCredentials(t.Context(), googleConn)
			if err != nil {
				t.Fatal(err)
			}
			var tokens struct {
				RefreshToken string `json:"refresh_token"`
				AccessToken  string `json:"access_token"`
			}
			if err := json.Unmarshal(raw, &tokens); err != nil || tokens.RefreshToken == "" || tokens.AccessToken == "" {
				t.Fatalf("google credentials %v: %+v", err, tokens)
			}
			snap()

			secrets := map[string]string{
				"CalDAV password":      scanPassword,
				"admin API key secret": st.token[len(st.token)-64:],
				"ingest API key":       ingest[len(ingest)-64:],
				"Twilio auth token":    testTwilioToken,
				"Google client secret": fake.ClientSecret(),
				"Google refresh token": tokens.RefreshToken,
				"Google access token":  tokens.AccessToken,
			}
			personal := map[string]string{
				"mail address":  scanMail,
				"phone number":  strings.TrimPrefix(scanPhone, "+"),
				"message body":  scanBody,
				"mail (local)":  strings.SplitN(scanMail, "@", 2)[0],
				"phone (local)": scanPhone[3:],
			}
			dump := storetest.Dump(t, st.store)
			log := logs.String()
			if !strings.Contains(log, `"msg"`) {
				t.Fatalf("no log captured")
			}
			where := map[string]string{"log": log}
			for i, s := range redisSnaps {
				where[fmt.Sprintf("redis snapshot %d", i+1)] = s
			}
			if len(redisSnaps[0]) == 0 {
				t.Errorf("the first Redis snapshot is empty; the scan would prove nothing")
			}
			for name, value := range secrets {
				for table, rows := range dump {
					for _, row := range rows {
						for col, v := range row {
							if strings.Contains(v, value) {
								t.Errorf("%s in plaintext in %s.%s", name, table, col)
							}
						}
					}
				}
				for place, text := range where {
					if strings.Contains(text, value) {
						t.Errorf("%s in plaintext in the %s", name, place)
					}
				}
			}
			seen := map[string]bool{}
			for name, value := range personal {
				for table, rows := range dump {
					for _, row := range rows {
						for col, v := range row {
							if !strings.Contains(v, value) {
								continue
							}
							if personalAllowed(table, col) {
								seen[name] = true
								continue
							}
							t.Errorf("%s in %s.%s, outside the allow-list", name, table, col)
						}
					}
				}
				for place, text := range where {
					if strings.Contains(text, value) {
						t.Errorf("%s in the %s", name, place)
					}
				}
			}
			// The allow-list is exercised: the notification rows do hold them.
			for _, name := range []string{"mail address", "phone number", "message body"} {
				if !seen[name] {
					t.Errorf("%s not found in the notification rows; is the scan looking at the right database?", name)
				}
			}
		})
	}
}

// connectGoogle runs the Google authorization through the fake consent
// screen and returns the new connection's id.
func (st *stack) connectGoogle(t *testing.T, fake *googletest.Server) string {
	t.Helper()
	var auth struct {
		AuthURL string `json:"auth_url"`
	}
	if code := st.do("POST", "/v1/connections/google/authorize", map[string]any{
		"subject_id": scanSubject, "privacy": "busy", "direction": "both",
		"consent":        map[string]any{"purposes": []string{"calendar.read.busy", "calendar.write"}, "policy_version": "2026-01"},
		"redirect_after": "https://platform.example/after",
	}, &auth); code != http.StatusOK {
		t.Fatalf("google authorize: %d", code)
	}
	back, err := fake.Authorize(auth.AuthURL, false)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(back)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("status") != "connected" {
		t.Fatalf("google callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var list struct {
		Items []struct{ ID, Provider string }
	}
	st.do("GET", "/v1/connections?subject_id="+scanSubject, nil, &list)
	for _, c := range list.Items {
		if c.Provider == store.ProviderGoogle {
			return c.ID
		}
	}
	t.Fatalf("no Google connection among %+v", list.Items)
	return ""
}

func redisOf(t *testing.T, redisURL string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// dumpRedis renders every key of the database with its value, whatever
// its type, one key per line.
func dumpRedis(t *testing.T, c *redis.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("redis keys: %v", err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("redis type %s: %v", k, err)
		}
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = c.SMembers(ctx, k).Result()
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = c.XRange(ctx, k, "-", "+").Result()
		case "none": // expired between KEYS and TYPE
			continue
		default:
			t.Fatalf("redis key %s has type %s, which the scan cannot read", k, typ)
		}
		if err != nil && err != redis.Nil {
			t.Fatalf("redis read %s: %v", k, err)
		}
		fmt.Fprintf(&b, "%s (%s) = %v\n", k, typ, v)
	}
	if slices.Contains(keys, "") {
		t.Fatal("redis returned an empty key name")
	}
	return b.String()
}
