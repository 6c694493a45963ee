// Package receipt turns one decision of the consent ledger into a consent
// receipt following the Kantara Initiative Consent Receipt Specification
// v1.1 (docs/schemas/consent-receipt.schema.json): who the controller is,
// what the person decided for which purpose, which data that covers and
// which third party (processor or calendar provider) receives it.
package receipt

import (
	"fmt"
	"time"

	"github.com/termind/termind/internal/processing"
)

// Version is the specification version receipts declare.
const Version = "KI-CR-v1.1.0"

// Receipt is a Kantara CR v1.1 consent receipt. Decision and PolicyVersion
// are extensions: termind issues receipts for refusals and withdrawals too.
type Receipt struct {
	Version          string       `json:"version"`
	Jurisdiction     string       `json:"jurisdiction"`
	ConsentTimestamp int64        `json:"consentTimestamp"`
	CollectionMethod string       `json:"collectionMethod"`
	ConsentReceiptID string       `json:"consentReceiptID"`
	PublicKey        string       `json:"publicKey,omitempty"`
	Language         string       `json:"language"`
	PIIPrincipalID   string       `json:"piiPrincipalId"`
	PIIControllers   []Controller `json:"piiControllers"`
	PolicyURL        string       `json:"policyUrl"`
	Services         []Service    `json:"services"`
	Sensitive        bool         `json:"sensitive"`
	SPICat           []string     `json:"spiCat"`
	Decision         string       `json:"decision"`
	PolicyVersion    string       `json:"policyVersion,omitempty"`
}

// Controller is one entry of piiControllers.
type Controller struct {
	PIIController string `json:"piiController"`
	Contact       string `json:"contact"`
	Address       string `json:"address"`
	Email         string `json:"email"`
	Phone         string `json:"phone,omitempty"`
}

// Service groups the purposes of one service.
type Service struct {
	Service  string    `json:"service"`
	Purposes []Purpose `json:"purposes"`
}

// Purpose is one purpose of a service.
type Purpose struct {
	Purpose              string   `json:"purpose"`
	PurposeCategory      []string `json:"purposeCategory"`
	ConsentType          string   `json:"consentType"`
	PIICategory          []string `json:"piiCategory"`
	PrimaryPurpose       bool     `json:"primaryPurpose"`
	Termination          string   `json:"termination"`
	ThirdPartyDisclosure bool     `json:"thirdPartyDisclosure"`
	ThirdPartyName       string   `json:"thirdPartyName,omitempty"`
}

// Decision is the ledger entry a receipt is issued for.
type Decision struct {
	ID            string
	SubjectID     string
	Purpose       string // calendar.read.busy, calendar.read.details, calendar.write, notify.sms, notify.email
	Decision      string // granted, refused, revoked
	PolicyVersion string
	Actor         string
	At            time.Time
	// Calendar is the connection the decision was recorded with, if any
	// (its provider and host name the third party).
	Calendar *Calendar
}

// Calendar is what a receipt says about a connected calendar.
type Calendar struct {
	Provider string // "google" | "caldav"
	Host     string // the CalDAV server's host
}

// Issuer is the controller as the tenant describes itself.
type Issuer struct {
	Name         string
	Contact      string
	Address      string
	Email        string
	Phone        string
	PolicyURL    string
	Jurisdiction string // "" is EU
}

// purposeText holds a purpose's words per language.
type purposeText struct {
	service, purpose string
	pii              []string
	category         string
	primary          bool
}

var purposes = map[string]map[string]purposeText{
	"calendar.read.busy": {
		"en": {"Calendar synchronisation", "Read the busy times of your calendar so that only free appointment slots are offered to you",
			[]string{"calendar availability (start and end of your events)"}, "Core Function", true},
		"de": {"Kalenderabgleich", "Belegte Zeiten Ihres Kalenders lesen, damit Ihnen nur freie Termine angeboten werden",
			[]string{"Kalenderverfügbarkeit (Beginn und Ende Ihrer Termine)"}, "Core Function", true},
	},
	"calendar.read.details": {
		"en": {"Calendar synchronisation", "Read the titles and locations of your calendar events",
			[]string{"calendar event details (title, location; description if you chose full access)"}, "Core Function", false},
		"de": {"Kalenderabgleich", "Titel und Orte Ihrer Kalendertermine lesen",
			[]string{"Termindetails aus Ihrem Kalender (Titel, Ort; Beschreibung bei vollem Zugriff)"}, "Core Function", false},
	},
	"calendar.write": {
		"en": {"Calendar synchronisation", "Write your booked appointments into your calendar and keep them up to date",
			[]string{"appointment data (time, title, location)"}, "Core Function", false},
		"de": {"Kalenderabgleich", "Ihre gebuchten Termine in Ihren Kalender eintragen und aktuell halten",
			[]string{"Termindaten (Zeit, Titel, Ort)"}, "Core Function", false},
	},
	"notify.sms": {
		"en": {"Appointment notifications", "Send you appointment confirmations, reminders and notices by SMS",
			[]string{"mobile phone number", "name", "appointment data (time, service)"}, "Contact Requested", true},
		"de": {"Terminbenachrichtigungen", "Ihnen Terminbestätigungen, Erinnerungen und Hinweise per SMS senden",
			[]string{"Mobilfunknummer", "Name", "Termindaten (Zeit, Leistung)"}, "Contact Requested", true},
	},
	"notify.email": {
		"en": {"Appointment notifications", "Send you appointment reminders by e-mail",
			[]string{"e-mail address", "name", "appointment data (time, service)"}, "Contact Requested", true},
		"de": {"Terminbenachrichtigungen", "Ihnen Terminerinnerungen per E-Mail senden",
			[]string{"E-Mail-Adresse", "Name", "Termindaten (Zeit, Leistung)"}, "Contact Requested", true},
	},
}

var termination = map[string]string{
	"en": "Until you withdraw your consent, which you can do at any time with %s; what was processed on its basis is then deleted (copies in your calendar removed).",
	"de": "Bis Sie Ihre Einwilligung widerrufen, was jederzeit bei %s möglich ist; danach werden die auf ihrer Grundlage verarbeiteten Daten gelöscht (Kopien in Ihrem Kalender entfernt).",
}

// Languages are the languages receipts are written in.
func Languages() []string { return []string{"de", "en"} }

// Build makes the receipt of one decision. setup names the processors of
// the running configuration. An unknown purpose or language is an error.
func Build(d Decision, iss Issuer, setup processing.Setup, language string) (Receipt, error) {
	texts, ok := purposes[d.Purpose]
	if !ok {
		return Receipt{}, fmt.Errorf("receipt: unknown purpose %q", d.Purpose)
	}
	txt, ok := texts[language]
	if !ok {
		return Receipt{}, fmt.Errorf("receipt: unknown language %q", language)
	}
	third := thirdParty(d, setup)
	p := Purpose{Purpose: txt.purpose, PurposeCategory: []string{txt.category}, ConsentType: "EXPLICIT",
		PIICategory: txt.pii, PrimaryPurpose: txt.primary, Termination: fmt.Sprintf(termination[language], iss.Name),
		ThirdPartyDisclosure: third != "", ThirdPartyName: third}
	jurisdiction := iss.Jurisdiction
	if jurisdiction == "" {
		jurisdiction = "EU"
	}
	return Receipt{
		Version:          Version,
		Jurisdiction:     jurisdiction,
		ConsentTimestamp: d.At.Unix(),
		CollectionMethod: collectionMethod(d),
		ConsentReceiptID: d.ID,
		Language:         language,
		PIIPrincipalID:   d.SubjectID,
		PIIControllers: []Controller{{PIIController: iss.Name, Contact: iss.Contact, Address: iss.Address,
			Email: iss.Email, Phone: iss.Phone}},
		PolicyURL:     iss.PolicyURL,
		Services:      []Service{{Service: txt.service, Purposes: []Purpose{p}}},
		SPICat:        []string{},
		Decision:      d.Decision,
		PolicyVersion: d.PolicyVersion,
	}, nil
}

// thirdParty names who receives the data of the purpose: the calendar's
// provider for calendar purposes, the configured SMS or mail processor for
// notifications; "" when nobody outside termind does.
func thirdParty(d Decision, setup processing.Setup) string {
	with := func(r processing.Recipient) string {
		if r.Country != "" {
			return r.Name + " (" + r.Country + ")"
		}
		return r.Name
	}
	switch d.Purpose {
	case "notify.sms":
		if setup.Twilio {
			return with(processing.Twilio)
		}
	case "notify.email":
		if setup.SMTPHost != "" {
			return with(processing.SMTPRecipient(setup.SMTPHost))
		}
	default:
		switch {
		case d.Calendar == nil:
		case d.Calendar.Provider == "google":
			return with(processing.Google)
		case d.Calendar.Host != "":
			return with(processing.CalDAVRecipient(d.Calendar.Host))
		}
	}
	return ""
}

func collectionMethod(d Decision) string {
	switch {
	case d.Calendar != nil:
		return "calendar connection on the booking platform, recorded through the termind API"
	case d.Actor == "cli":
		return "recorded by the operator (termind CLI)"
	default:
		return "booking platform, recorded through the termind API"
	}
}
