package caldav

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// The few WebDAV bodies this package writes and reads itself. go-webdav's
// client covers home set and calendar listing; it has no MKCALENDAR and does
// not report ctag, sync-token or supported reports.

const principalPropfind = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>`

const calendarPropfind = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop>` +
	`<D:displayname/><D:sync-token/><CS:getctag/><D:supported-report-set/>` +
	`</D:prop></D:propfind>`

// ourCopiesQuery asks for the events that carry our marker, with their
// ETag and, where the server supports partial retrieval, only the
// properties needed to recognise them (RFC 4791 9.6, 9.7.2).
const ourCopiesQuery = `<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>` +
	`<C:calendar-data><C:comp name="VCALENDAR"><C:prop name="VERSION"/><C:comp name="VEVENT">` +
	`<C:prop name="UID"/><C:prop name="` + MarkerProperty + `"/></C:comp></C:comp></C:calendar-data>` +
	`</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">` +
	`<C:prop-filter name="` + MarkerProperty + `"/>` +
	`</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>`

// mkcalendarBody asks for a calendar that holds events only, named name.
func mkcalendarBody(name string) string {
	var escaped bytes.Buffer
	_ = xml.EscapeText(&escaped, []byte(name)) // writes to memory, cannot fail
	return `<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>` +
		`<D:displayname>` + escaped.String() + `</D:displayname>` +
		`<C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>` +
		`</D:prop></D:set></C:mkcalendar>`
}

type multistatus struct {
	XMLName   xml.Name      `xml:"DAV: multistatus"`
	Responses []davResponse `xml:"DAV: response"`
}

type davResponse struct {
	Href      string        `xml:"DAV: href"`
	Propstats []davPropstat `xml:"DAV: propstat"`
}

type davPropstat struct {
	Status string  `xml:"DAV: status"`
	Prop   davProp `xml:"DAV: prop"`
}

type davHref struct {
	Href string `xml:"DAV: href"`
}

type davProp struct {
	CurrentUserPrincipal *davHref `xml:"DAV: current-user-principal"`
	DisplayName          string   `xml:"DAV: displayname"`
	SyncToken            string   `xml:"DAV: sync-token"`
	CTag                 string   `xml:"http://calendarserver.org/ns/ getctag"`
	GetETag              string   `xml:"DAV: getetag"`
	CalendarData         string   `xml:"urn:ietf:params:xml:ns:caldav calendar-data"`
	SupportedReportSet   *struct {
		Reports []struct {
			Report struct {
				Names []struct {
					XMLName xml.Name
				} `xml:",any"`
			} `xml:"DAV: report"`
		} `xml:"DAV: supported-report"`
	} `xml:"DAV: supported-report-set"`
}

// ok reports whether the propstat's status is 2xx ("HTTP/1.1 200 OK").
func (ps davPropstat) ok() bool {
	f := strings.Fields(ps.Status)
	return len(f) >= 2 && strings.HasPrefix(f[1], "2")
}

// props merges the successful propstats of a response.
func (r davResponse) props() davProp {
	var p davProp
	for _, ps := range r.Propstats {
		if !ps.ok() {
			continue
		}
		q := ps.Prop
		if q.CurrentUserPrincipal != nil {
			p.CurrentUserPrincipal = q.CurrentUserPrincipal
		}
		if q.DisplayName != "" {
			p.DisplayName = q.DisplayName
		}
		if q.SyncToken != "" {
			p.SyncToken = q.SyncToken
		}
		if q.CTag != "" {
			p.CTag = q.CTag
		}
		if q.GetETag != "" {
			p.GetETag = q.GetETag
		}
		if q.CalendarData != "" {
			p.CalendarData = q.CalendarData
		}
		if q.SupportedReportSet != nil {
			p.SupportedReportSet = q.SupportedReportSet
		}
	}
	return p
}

// supportsReport reports whether the supported-report-set lists the report
// with the given namespace and local name.
func (p davProp) supportsReport(space, local string) bool {
	if p.SupportedReportSet == nil {
		return false
	}
	for _, r := range p.SupportedReportSet.Reports {
		for _, n := range r.Report.Names {
			if n.XMLName.Space == space && n.XMLName.Local == local {
				return true
			}
		}
	}
	return false
}
