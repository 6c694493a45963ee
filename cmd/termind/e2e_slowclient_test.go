package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// TestSlowClientsAreCutOff talks raw TCP to the daemon's HTTP server with
// short configured timeouts: a client that trickles its headers, trickles
// its body, or idles on a keep-alive connection is disconnected once its
// limit passes, stores nothing, and does not keep others from being served.
func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	const (
		headerTimeout = 400 * time.Millisecond
		readTimeout   = 1200 * time.Millisecond
		idleTimeout   = 600 * time.Millisecond
		// slack covers scheduling on a loaded machine.
		slack = 3 * time.Second
	)
	st := newStack(t, store.DialectSQLite, func(c *config.Config) {
		c.HTTPReadHeaderTimeout = headerTimeout
		c.HTTPReadTimeout = readTimeout
		c.HTTPIdleTimeout = idleTimeout
	})
	addr := strings.TrimPrefix(st.url, "http://")
	// A valid request: delivered in full, it would be stored.
	raw, err := json.Marshal(mailRequest("slow"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	headers := "POST /v1/notifications HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + st.token +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"

	cases := []struct {
		name string
		// send writes to the connection until the server hangs up.
		send  func(c net.Conn) error
		limit time.Duration
	}{
		{"headers trickled", func(c net.Conn) error { return trickle(c, headers, 100*time.Millisecond) }, headerTimeout},
		{"headers never finished", func(c net.Conn) error {
			_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
			return err
		}, headerTimeout},
		{"body trickled", func(c net.Conn) error {
			if _, err := io.WriteString(c, headers); err != nil {
				return err
			}
			return trickle(c, body, 100*time.Millisecond)
		}, readTimeout},
		{"idle after a request", func(c net.Conn) error {
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthz: %d", resp.StatusCode)
			}
			return nil
		}, idleTimeout},
	}
	t.Run("clients", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				began := time.Now()
				if err := c.send(conn); err != nil && !isHangUp(err) {
					t.Fatalf("send: %v", err)
				}
				// The server closes the connection: reads end (perhaps after
				// an error answer), within the limit plus slack.
				if err := conn.SetReadDeadline(began.Add(c.limit + slack)); err != nil {
					t.Fatal(err)
				}
				_, err = io.Copy(io.Discard, conn)
				var nerr net.Error
				if errors.As(err, &nerr) && nerr.Timeout() {
					t.Fatalf("connection still open %v after it began (limit %v)", time.Since(began), c.limit)
				}
				if took := time.Since(began); took < c.limit-50*time.Millisecond {
					t.Errorf("cut off after %v, before the limit %v", took, c.limit)
				}
			})
		}
	})
	// Nothing of the cut-off requests was stored, and the server still
	// serves ordinary clients.
	if n := len(storetest.Dump(t, st.store)["notifications"]); n != 0 {
		t.Errorf("%d notifications stored by cut-off requests", n)
	}
	resp, err := http.Get(st.url + "/healthz")
	if err != nil {
		t.Fatalf("healthz after slow clients: %v", err)
	}
	resp.Body.Close()
}

// trickle writes s one byte per interval, stopping at the first error
// (the server hung up).
func trickle(c net.Conn, s string, interval time.Duration) error {
	for i := 0; i < len(s); i++ {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return err
		}
		time.Sleep(interval)
	}
	return nil
}

// isHangUp reports a write failing because the server closed the
// connection.
func isHangUp(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "broken pipe") ||
		strings.Contains(err.Error(), "connection reset")
}
