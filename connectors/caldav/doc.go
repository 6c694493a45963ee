// Package caldav connects termind to a customer's CalDAV calendar (RFC 4791):
// Radicale, Nextcloud, Fastmail, iCloud, mailbox.org and the like.
//
// Like every connector it talks to one external system and knows nothing
// about the store, consent or sync rules; callers decide what to do with
// what it returns.
//
// CalDAV URLs are typed in by end users, so the server termind talks to is
// chosen by someone else. NewHTTPClient returns the only HTTP client this
// package should be used with: it refuses plain http, and loopback,
// private, link-local, CGNAT and other internal addresses — checked on the
// address actually dialed and again on every redirect — unless Options
// allow them (TERMIND_CALDAV_ALLOW_PRIVATE=true sets AllowPrivate).
//
// Connect validates a URL and credentials against the server, discovers the
// user's calendars and picks one (or creates it with MKCALENDAR). Its
// errors are *Error values; errors.Is tells their kind (with the HTTP
// status the API is expected to answer):
//
//	ErrInvalidURL           the URL is malformed                 → 422
//	ErrForbiddenAddress     scheme or address refused            → 422
//	ErrCredentialsRejected  401/403 from the server              → 422
//	ErrUnreachable          DNS, refused, timeout, TLS, 5xx      → 502
//	ErrNotCalDAV            the server does not speak CalDAV     → 422
//	ErrCalendarNotFound     no such calendar, none created       → 422
//
// Their Error text is safe to show to the API client.
//
// Client reads and writes events in a connected calendar: conditional
// PutEvent and DeleteEvent (If-Match / If-None-Match), and OurCopies and
// RemoveOurCopies for the events termind wrote. termind's copies carry
// MarkerProperty (X-TERMIND-APPOINTMENT: <appointment id>), the UID
// EventUID and the resource name EventName; the user's own events are
// never listed or removed as ours. Besides the kinds above its errors can
// be:
//
//	ErrPreconditionFailed   412: the event exists, or changed since its ETag was read
//	ErrRefused              another 4xx: malformed or refused event
//
// Files: httpclient.go (SSRF-safe client and CheckAddr), connect.go
// (discovery and MKCALENDAR), events.go (Client: events and our marker),
// xml.go (the WebDAV bodies written and read here), errors.go (error kinds
// and classification). The caldavtest package runs a real Radicale for
// tests.
// Calendar data: ical.go (ParseObject, values), zone.go (TZIDs), recur.go
// (RRULE, bounded), expand.go (Occurrences), export.go (EncodeAppointment),
// hash.go (ContentHash).
package caldav
