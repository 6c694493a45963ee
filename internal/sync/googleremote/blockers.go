package googleremote

import (
	"context"
	"fmt"
)

// RemoveBlockers deletes termind's blockers only (a revocation that keeps
// the appointment copies: blockers would never be updated again) and
// returns how many went.
func (r *Remote) RemoveBlockers(ctx context.Context) (int, error) {
	evs, err := r.cal.ListMarked(ctx, PropKind, KindBlocker)
	if err != nil {
		return 0, fmt.Errorf("googleremote: list blockers: %w", mapErr(err))
	}
	n := 0
	for _, ev := range evs {
		if err := r.Delete(ctx, ev.Id, ""); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
