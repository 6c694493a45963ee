// Package processing builds a tenant's records of processing activities
// (GDPR Art. 30) from the running configuration and the tenant's settings
// and connections: which processors actually receive personal data (the
// SMTP host, Twilio, Google, each CalDAV host), whether that is a transfer
// to a third country, and how long the data is kept. The same facts name
// the third parties on consent receipts.
package processing

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/termind/termind/internal/config"
)

// Setup is what the running configuration says about processors.
type Setup struct {
	// SMTPHost is the host of TERMIND_SMTP_URL; "" means mail is written to
	// files and no mail processor is involved.
	SMTPHost string
	Twilio   bool // SMS go through Twilio (else they are written to files)
	Google   bool // Google Calendar connections are offered
}

// SetupFrom reads Setup from the configuration.
func SetupFrom(cfg config.Config) Setup {
	s := Setup{Twilio: cfg.SMSConfigured(), Google: cfg.GoogleConfigured()}
	if cfg.SMTPURL != "" {
		if u, err := url.Parse(cfg.SMTPURL); err == nil {
			s.SMTPHost = u.Hostname()
		}
	}
	return s
}

// Recipient is a processor (or other recipient) of personal data.
type Recipient struct {
	Name         string `json:"name"`
	Role         string `json:"role"` // "processor"
	Host         string `json:"host,omitempty"`
	Country      string `json:"country,omitempty"` // ISO 3166-1 alpha-2, when known
	ThirdCountry bool   `json:"third_country_transfer"`
}

// The processors whose seat is known: both are in the United States, so
// using them is a transfer to a third country (GDPR Chapter V).
var (
	Twilio = Recipient{Name: "Twilio Inc.", Role: "processor", Host: "api.twilio.com", Country: "US", ThirdCountry: true}
	Google = Recipient{Name: "Google LLC", Role: "processor", Host: "www.googleapis.com", Country: "US", ThirdCountry: true}
)

// SMTPRecipient is the mail relay; its seat is not known from its host
// name, so no transfer is assumed (the controller checks the contract).
func SMTPRecipient(host string) Recipient {
	return Recipient{Name: "SMTP relay " + host, Role: "processor", Host: host}
}

// CalDAVRecipient is the server of a customer's own calendar. The customer
// chose it; termind reads and writes there under their consent.
func CalDAVRecipient(host string) Recipient {
	return Recipient{Name: "CalDAV server " + host, Role: "calendar provider chosen by the data subject", Host: host}
}

// Tenant is what the records need of a tenant.
type Tenant struct {
	ID                    string
	Name                  string
	NotificationRetention time.Duration
	AuditRetention        time.Duration
	// The tenant's other windows (zero: not stated).
	ImportedEventRetention    time.Duration
	BrokenConnectionRetention time.Duration
	InactiveSubjects          time.Duration
	InactivityAction          string // erase | anonymise
}

// Connection is what the records need of a calendar connection.
type Connection struct {
	Provider    string // "caldav" | "google"
	CalendarURL string
}

// Activity is one processing activity.
type Activity struct {
	ID                   string      `json:"id"`
	Name                 string      `json:"name"`
	Purpose              string      `json:"purpose"`
	LegalBasis           string      `json:"legal_basis"`
	DataSubjects         []string    `json:"data_subjects"`
	DataCategories       []string    `json:"data_categories"`
	Recipients           []Recipient `json:"recipients"`
	ThirdCountryTransfer bool        `json:"third_country_transfer"`
	TransferCountries    []string    `json:"transfer_countries"`
	Retention            string      `json:"retention"`
}

// Records are a tenant's records of processing.
type Records struct {
	TenantID    string     `json:"tenant_id"`
	Controller  string     `json:"controller"`
	Processor   string     `json:"processor"`
	GeneratedAt string     `json:"generated_at"`
	Activities  []Activity `json:"activities"`
}

// Build lists the activities termind performs for the tenant under this
// setup. conns are the tenant's connections that are not revoked (their
// CalDAV hosts are processors of the sync).
func Build(setup Setup, t Tenant, conns []Connection, now time.Time) Records {
	keep := func(d time.Duration) string { return fmt.Sprintf("%d days", int(d/(24*time.Hour))) }
	customers := []string{"customers of the tenant"}
	var acts []Activity

	mail := Activity{ID: "notify.email", Name: "Appointment notifications by e-mail",
		Purpose:        "send confirmations, reminders, reschedule and cancellation notices of appointments",
		LegalBasis:     "Art. 6(1)(b) GDPR (contract); reminders Art. 6(1)(f), refusable",
		DataSubjects:   customers,
		DataCategories: []string{"e-mail address", "name", "appointment data (time, service, location)", "delivery status"},
		Retention: "notifications " + keep(t.NotificationRetention) +
			" after their final state, then only anonymous daily counts"}
	if setup.SMTPHost != "" {
		mail.Recipients = append(mail.Recipients, SMTPRecipient(setup.SMTPHost))
	}
	acts = append(acts, mail)

	sms := Activity{ID: "notify.sms", Name: "Appointment notifications by SMS",
		Purpose:        "send appointment confirmations, reminders and notices by SMS",
		LegalBasis:     "Art. 6(1)(a) GDPR (consent notify.sms)",
		DataSubjects:   customers,
		DataCategories: []string{"mobile phone number", "name", "appointment data (time, service)", "delivery status"},
		Retention: "notifications " + keep(t.NotificationRetention) +
			" after their final state; consent decisions while the customer's data is kept"}
	if setup.Twilio {
		sms.Recipients = append(sms.Recipients, Twilio)
	}
	acts = append(acts, sms)

	var hosts []string
	google := setup.Google
	for _, c := range conns {
		switch c.Provider {
		case "google":
			google = true
		case "caldav":
			if u, err := url.Parse(c.CalendarURL); err == nil && u.Hostname() != "" {
				hosts = append(hosts, strings.ToLower(u.Hostname()))
			}
		}
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	syncRetention := "imported events while inside the sync window (30 days back, 365 ahead) and connected"
	if t.ImportedEventRetention > 0 {
		syncRetention += ", at most " + keep(t.ImportedEventRetention) + " after they ended"
	}
	syncRetention += "; credentials until the connection is revoked"
	if t.BrokenConnectionRetention > 0 {
		syncRetention += " (a connection broken for " + keep(t.BrokenConnectionRetention) + " is revoked)"
	}
	if len(hosts) > 0 {
		caldav := Activity{ID: "calendar.caldav", Name: "Calendar synchronisation (CalDAV)",
			Purpose:        "read busy times from customers' calendars and write appointment copies into them",
			LegalBasis:     "Art. 6(1)(a) GDPR (consent calendar.read.busy, calendar.read.details, calendar.write)",
			DataSubjects:   customers,
			DataCategories: []string{"calendar events at the consented level (busy times; titles and locations; descriptions)", "calendar credentials (encrypted)", "appointment data"},
			Retention:      syncRetention}
		for _, h := range hosts {
			caldav.Recipients = append(caldav.Recipients, CalDAVRecipient(h))
		}
		acts = append(acts, caldav)
	}
	if google {
		acts = append(acts, Activity{ID: "calendar.google", Name: "Calendar synchronisation (Google Calendar)",
			Purpose:        "read busy times from customers' Google calendars and write appointment copies into them",
			LegalBasis:     "Art. 6(1)(a) GDPR (consent calendar.read.busy, calendar.read.details, calendar.write)",
			DataSubjects:   customers,
			DataCategories: []string{"calendar events at the consented level", "OAuth tokens (encrypted)", "appointment data"},
			Recipients:     []Recipient{Google},
			Retention:      syncRetention})
	}
	acts = append(acts, Activity{ID: "accountability", Name: "Consent ledger and audit log",
		Purpose:        "prove consent decisions and record changes to consents, connections and data-subject requests",
		LegalBasis:     "Art. 6(1)(c) GDPR with Art. 5(2), 7(1) (accountability)",
		DataSubjects:   customers,
		DataCategories: []string{"customer id", "consent decisions", "IP address and user agent reported with a decision"},
		Retention:      "audit entries " + keep(t.AuditRetention) + "; the ledger while the customer's data is kept" + inactivity(t)})

	for i := range acts {
		a := &acts[i]
		a.TransferCountries = []string{}
		if a.Recipients == nil {
			a.Recipients = []Recipient{}
		}
		for _, r := range a.Recipients {
			if r.ThirdCountry {
				a.ThirdCountryTransfer = true
				if !slices.Contains(a.TransferCountries, r.Country) {
					a.TransferCountries = append(a.TransferCountries, r.Country)
				}
			}
		}
	}
	return Records{TenantID: t.ID, Controller: t.Name, Processor: "termind (operated for the controller)",
		GeneratedAt: now.UTC().Format(time.RFC3339), Activities: acts}
}

// Markdown renders the records as a document an auditor can read.
func (r Records) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Records of processing activities\n\n")
	fmt.Fprintf(&b, "- Controller: %s (`%s`)\n- Processor: %s\n- Generated: %s\n", md(r.Controller), r.TenantID, r.Processor, r.GeneratedAt)
	for _, a := range r.Activities {
		fmt.Fprintf(&b, "\n## %s\n\n", md(a.Name))
		fmt.Fprintf(&b, "| | |\n|---|---|\n")
		row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, md(v)) }
		row("Purpose", a.Purpose)
		row("Legal basis", a.LegalBasis)
		row("Data subjects", strings.Join(a.DataSubjects, "; "))
		row("Data categories", strings.Join(a.DataCategories, "; "))
		var rs []string
		for _, rc := range a.Recipients {
			s := rc.Name + " (" + rc.Role
			if rc.Country != "" {
				s += ", " + rc.Country
			}
			rs = append(rs, s+")")
		}
		if len(rs) == 0 {
			rs = []string{"none (delivered to local files or kept in termind)"}
		}
		row("Recipients", strings.Join(rs, "; "))
		transfer := "no"
		if a.ThirdCountryTransfer {
			transfer = "yes: " + strings.Join(a.TransferCountries, ", ")
		}
		row("Third-country transfer", transfer)
		row("Retention", a.Retention)
	}
	return b.String()
}

// md keeps a value from breaking the table.
func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

// inactivity states what happens to customers nobody has dealt with for
// the tenant's inactivity period.
func inactivity(t Tenant) string {
	if t.InactiveSubjects <= 0 {
		return ""
	}
	what := "erased"
	if t.InactivityAction == "anonymise" {
		what = "anonymised"
	}
	return fmt.Sprintf("; a customer without activity for %d days is %s", int(t.InactiveSubjects/(24*time.Hour)), what)
}
