// Package queuetest hands tests a private Redis logical database on the
// real Redis server, so that test processes running at the same time never
// see each other's tasks.
package queuetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// Databases 1..15 are handed out; db 0 holds the claims.
	firstDB   = 1
	lastDB    = 15
	claimTTL  = 900 * time.Second
	waitLimit = 90 * time.Second
)

var releaseClaim = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// ServerURL is the Redis server tests use: TERMIND_TEST_REDIS_URL, or
// redis://127.0.0.1:6379.
func ServerURL() string {
	if u := os.Getenv("TERMIND_TEST_REDIS_URL"); u != "" {
		return strings.TrimRight(u, "/")
	}
	return "redis://127.0.0.1:6379"
}

// RedisURL claims a logical database that no other test is using, empties
// it and returns its URL. The claim is released when the test ends. The test
// fails (never skips) if Redis is unreachable or no database frees up in time.
func RedisURL(t testing.TB) string {
	t.Helper()
	base := ServerURL()
	opt, err := redis.ParseURL(base + "/0")
	if err != nil {
		t.Fatalf("queuetest: parse %q: %v", base, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit+10*time.Second)
	defer cancel()

	claims := redis.NewClient(opt)
	defer claims.Close()
	if err := claims.Ping(ctx).Err(); err != nil {
		t.Fatalf("queuetest: redis at %s is not reachable (start it, or set TERMIND_TEST_REDIS_URL): %v", base, err)
	}

	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)

	deadline := time.Now().Add(waitLimit)
	for {
		for n := firstDB; n <= lastDB; n++ {
			key := fmt.Sprintf("termind:test:db:%d", n)
			ok, err := claims.SetNX(ctx, key, token, claimTTL).Result()
			if err != nil {
				t.Fatalf("queuetest: claim db %d: %v", n, err)
			}
			if !ok {
				continue
			}
			t.Cleanup(func() { release(t, opt, key, token) })
			url := fmt.Sprintf("%s/%d", base, n)
			flush(t, ctx, opt, n)
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("queuetest: all Redis test databases %d..%d stayed taken for %s", firstDB, lastDB, waitLimit)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func flush(t testing.TB, ctx context.Context, opt *redis.Options, n int) {
	t.Helper()
	o := *opt
	o.DB = n
	c := redis.NewClient(&o)
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("queuetest: flush db %d: %v", n, err)
	}
}

func release(t testing.TB, opt *redis.Options, key, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(opt)
	defer c.Close()
	if err := releaseClaim.Run(ctx, c, []string{key}, token).Err(); err != nil {
		t.Errorf("queuetest: release %s: %v", key, err)
	}
}
