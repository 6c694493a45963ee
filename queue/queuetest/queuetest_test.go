package queuetest

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestRedisURLHandsOutPrivateEmptyDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := RedisURL(t), RedisURL(t)
	if a == b {
		t.Fatalf("two claims got the same database %s", a)
	}
	for _, u := range []string{a, b} {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatalf("parse %s: %v", u, err)
		}
		if opt.DB < firstDB || opt.DB > lastDB {
			t.Errorf("%s: database %d outside %d..%d", u, opt.DB, firstDB, lastDB)
		}
		c := redis.NewClient(opt)
		n, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil || n != 0 {
			t.Errorf("%s: %d keys, %v; want an empty database", u, n, err)
		}
		// The claim is held in db 0 under this test's token.
		claims := redis.NewClient(&redis.Options{Addr: opt.Addr, Username: opt.Username, Password: opt.Password})
		held, err := claims.Exists(ctx, "termind:test:db:"+strconv.Itoa(opt.DB)).Result()
		claims.Close()
		if err != nil || held != 1 {
			t.Errorf("%s: claim key exists = %d, %v", u, held, err)
		}
	}
}
