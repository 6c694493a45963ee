package store

import (
	"context"
	"fmt"
)

// ConnectionCount is the number of connections of one provider in one
// state, across tenants: what the connections gauge shows.
type ConnectionCount struct {
	Provider, State string
	N               int
}

// CountConnections counts connections by provider and state over all
// tenants. It reads only those two columns: nothing personal.
func (s *Store) CountConnections(ctx context.Context) ([]ConnectionCount, error) {
	out, err := queryAll(ctx, s.read, func(r rowScanner) (ConnectionCount, error) {
		var c ConnectionCount
		err := r.Scan(&c.Provider, &c.State, &c.N)
		return c, err
	}, "SELECT provider, state, COUNT(*) FROM connections GROUP BY provider, state ORDER BY provider, state")
	if err != nil {
		return nil, fmt.Errorf("count connections: %w", err)
	}
	return out, nil
}
