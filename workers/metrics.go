package workers

import "time"

// StateMetrics is told each state a notification reaches.
type StateMetrics interface {
	NotificationState(channel, template, status string)
}

// NotifyMetrics receives what the notifier observes (*metrics.Metrics):
// each state a notification reaches, and how long each provider call took.
type NotifyMetrics interface {
	StateMetrics
	ProviderRequest(provider string, d time.Duration, err error)
}

// PurgeMetrics counts the rows retention purges delete.
type PurgeMetrics interface {
	Purged(rows int64)
}

// noMetrics stands in when a component is built without metrics.
type noMetrics struct{}

func (noMetrics) NotificationState(string, string, string)     {}
func (noMetrics) ProviderRequest(string, time.Duration, error) {}
func (noMetrics) Purged(int64)                                 {}
