package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// fastForwardEvery is how often the embedded server's clock is advanced.
// miniredis only expires keys when told time has passed, and asynq's leases,
// the scheduler lease and task retention all rest on key TTLs.
const fastForwardEvery = 100 * time.Millisecond

// Redis is a connection target for the queue: an external Redis (or
// Sentinel) named by a URL, or an embedded in-process server.
type Redis struct {
	connOpt  asynq.RedisConnOpt
	client   redis.UniversalClient
	embedded *miniredis.Miniredis

	stop     chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	isClosed bool
}

// OpenRedis connects to the Redis named by url (redis://, rediss://,
// redis-socket://, redis-sentinel://). An empty url starts an embedded
// Redis-compatible server on a loopback port, for a single node.
func OpenRedis(ctx context.Context, url string, logger *slog.Logger) (*Redis, error) {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Redis{stop: make(chan struct{})}
	if url == "" {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		r.embedded = m
		r.connOpt = asynq.RedisClientOpt{Addr: m.Addr()}
		r.wg.Add(1)
		go r.advanceClock()
		logger.Info("queue: using the embedded queue; single node only, queued tasks are lost on exit and re-enqueued from the store",
			"addr", m.Addr())
	} else {
		opt, err := asynq.ParseRedisURI(url)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		r.connOpt = opt
	}
	c, ok := r.connOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		_ = r.Close()
		return nil, fmt.Errorf("redis: unexpected client type")
	}
	r.client = c
	if err := r.Ping(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Redis) advanceClock() {
	defer r.wg.Done()
	t := time.NewTicker(fastForwardEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.embedded.FastForward(now.Sub(last))
			last = now
		}
	}
}

// ConnOpt is what asynq clients, servers and inspectors connect with.
func (r *Redis) ConnOpt() asynq.RedisConnOpt { return r.connOpt }

// Client is a shared go-redis client (scheduler lease, readiness).
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Embedded reports whether this is the in-process server.
func (r *Redis) Embedded() bool { return r.embedded != nil }

// Ping checks that Redis answers (readiness).
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Close closes the shared client and stops the embedded server, if any.
// Close it after the servers, clients and schedulers that use it.
func (r *Redis) Close() error {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.isClosed {
		return nil
	}
	r.isClosed = true
	close(r.stop)
	r.wg.Wait()
	var err error
	if r.client != nil {
		err = r.client.Close()
	}
	if r.embedded != nil {
		r.embedded.Close()
	}
	if err != nil {
		return fmt.Errorf("redis close: %w", err)
	}
	return nil
}
