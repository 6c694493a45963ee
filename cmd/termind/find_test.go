package main

import (
	"testing"
	"time"

	"github.com/termind/termind/connectors/mail/mailtest"
	"github.com/termind/termind/connectors/sms/smstest"
)

func countMail(st *stack, notificationID string) int {
	n := 0
	for _, m := range st.smtp.Messages() {
		if m.Header.Get("X-Termind-Notification") == notificationID {
			n++
		}
	}
	return n
}

func findMail(t *testing.T, st *stack, notificationID string) mailtest.Received {
	t.Helper()
	var found *mailtest.Received
	waitFor(t, 5*time.Second, "mail "+notificationID, func() bool {
		for _, m := range st.smtp.Messages() {
			if m.Header.Get("X-Termind-Notification") == notificationID {
				found = &m
				return true
			}
		}
		return false
	})
	return *found
}

func findSMS(t *testing.T, st *stack, sid string) smstest.Received {
	t.Helper()
	for _, m := range st.twilio.Messages() {
		if m.SID == sid {
			return m
		}
	}
	t.Fatalf("Twilio fake has no message %s", sid)
	return smstest.Received{}
}
