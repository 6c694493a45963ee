// Package templates holds the embedded default notification templates and
// the renderer that turns a template name, a locale preference list and the
// booking system's data into a finished mail or SMS.
//
// # Layout
//
// Default templates are embedded from default/:
//
//	default/layout.html.tmpl              HTML frame shared by all mails; calls {{template "content" .}}
//	default/<locale>/<name>.subject.tmpl  mail subject (text/template, one line)
//	default/<locale>/<name>.text.tmpl     mail plain-text body (text/template)
//	default/<locale>/<name>.html.tmpl     mail HTML body, the "content" inside the layout (html/template)
//	default/<locale>/<name>.sms.tmpl      SMS text (text/template)
//
// Names are confirmation, reminder, cancellation and reschedule (mail and
// SMS) and consent_receipt (mail only); locales are de and en. One trailing newline of every file is dropped, so files may end
// with a newline as editors like.
//
// # Overrides
//
// New takes an optional override directory with the same shape:
//
//	<dir>/layout.html.tmpl                       layout for all tenants
//	<dir>/<locale>/<name>.<part>.tmpl            part for all tenants
//	<dir>/tnt_<id>/layout.html.tmpl              layout for one tenant
//	<dir>/tnt_<id>/<locale>/<name>.<part>.tmpl   part for one tenant
//
// A directory whose name starts with "tnt_" is a tenant directory (tenant ids
// carry that prefix); any other directory must be a well-formed BCP 47 tag and
// is a locale directory. Anything else, or a file that does not parse, makes
// New fail with an error naming the file. Each part is replaced on its own:
// tenant override, then shared override, then default. An override may add a
// template name or a locale that has no default.
//
// # Locale choice
//
// The caller passes its preference list (requested locale, then the tenant's
// default). The renderer tries each entry, right after a region tag such as
// "de-AT" also its base language "de", and finally "en". The first locale
// that has every part the channel needs (email: subject, text, html; sms:
// sms) wins.
//
// # Template data
//
// Templates see the caller's data with these changes:
//
//	.start .end .previous_start   date and time in .time_zone, e.g. "Montag, 23. November 2026, 14:30 Uhr"
//	.decided_at                   the same for the decision time of a consent_receipt
//	.start_date .end_date ...     the date alone, e.g. "Monday, 23 November 2026"
//	.start_time .end_time ...     the clock time alone, e.g. "14:30" (templates add "Uhr" where the language wants it)
//	.locale                       the chosen locale, e.g. "de"
//	.subject                      the rendered subject (for the HTML <title>)
//
// consent_receipt mails the receipt of a consent decision; its data:
// customer_name, provider_name, purpose (the purpose in words), decision
// (granted | refused | revoked), decided_at (RFC 3339), time_zone,
// receipt_id (the ledger decision's id) and optional receipt_url (where
// the platform offers the JSON receipt of
// GET /v1/subjects/{id}/consents/{decision_id}/receipt).
//
// These names are the renderer's: a data key of the same name is replaced.
// Times are shown in time_zone whatever offset the RFC 3339 value carries.
// Date words come from a per-language table (de, en); a locale without one
// gets an ISO-like "2026-11-23 14:30", never another language's words.
//
// The variables a template needs are read from its parse tree. A variable
// used only inside {{if .x}} or {{with .x}} is optional and renders as empty
// when absent; every other variable is required, and a missing or empty one
// is an error rather than a broken message (see Check). A guard on a time
// (e.g. {{if .previous_start}}) also covers its _date and _time forms.
//
// Rendering uses missingkey=error; the HTML part is html/template and so
// escapes data, the other parts print it as given. A subject is always one
// line. An SMS longer than 10 segments is refused.
package templates
