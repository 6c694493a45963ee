package queue

// calendar:block: reconcile one connection's blockers (busy time of the
// subject's other calendars, written into this one without details).

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"
)

// TypeCalendarBlock is the task type of a connection's blocker
// reconciliation; its payload is a ConnectionPayload.
const TypeCalendarBlock = "calendar:block"

// BlockTaskID is one pending block per connection: triggers that arrive
// while one waits (several pulls of the subject's other calendars) are
// folded into it.
func BlockTaskID(connectionID string) string { return "calendar:block:" + connectionID }

// NewBlockTask builds a calendar:block task without options.
func NewBlockTask(connectionID string) (*asynq.Task, error) {
	if connectionID == "" {
		return nil, fmt.Errorf("block task: empty connection id")
	}
	b, err := json.Marshal(ConnectionPayload{ConnectionID: connectionID})
	if err != nil {
		return nil, fmt.Errorf("block task: %w", err)
	}
	return asynq.NewTask(TypeCalendarBlock, b), nil
}

// EnqueueBlock asks for a connection's blockers to be reconciled; while
// one is pending, another request is folded into it.
func (c *Client) EnqueueBlock(ctx context.Context, connectionID string) error {
	if connectionID == "" {
		return fmt.Errorf("enqueue block: empty connection id")
	}
	return c.enqueueOnce(ctx, "block", TypeCalendarBlock, ConnectionPayload{ConnectionID: connectionID},
		BlockTaskID(connectionID), syncMaxRetry, syncTimeout)
}
