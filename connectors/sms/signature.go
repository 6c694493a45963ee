package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/url"
	"sort"
	"strings"
)

// Sign computes Twilio's X-Twilio-Signature for a POST to fullURL with the
// form params: base64(HMAC-SHA1(authToken, fullURL + each key in sorted
// order followed by its value)). Repeated keys contribute each value, sorted.
func Sign(authToken, fullURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		values := append([]string(nil), params[k]...)
		sort.Strings(values)
		for _, v := range values {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ValidSignature checks X-Twilio-Signature for a status callback: fullURL
// is the exact URL Twilio posted to (scheme, host, path and query), params
// the POSTed form. Like Twilio's own libraries it also accepts the URL with
// its port removed or the default port added, because Twilio signs some
// URLs one way and some the other. The comparison is constant-time.
func ValidSignature(authToken, fullURL string, params url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	got := []byte(signature)
	ok := false
	for _, u := range urlVariants(fullURL) {
		// No early exit: every variant is checked.
		if hmac.Equal([]byte(Sign(authToken, u, params)), got) {
			ok = true
		}
	}
	return ok
}

// urlVariants returns fullURL and the same URL with the port toggled.
func urlVariants(fullURL string) []string {
	u, err := url.Parse(fullURL)
	if err != nil || u.Host == "" {
		return []string{fullURL}
	}
	other := *u
	if u.Port() != "" {
		other.Host = u.Hostname()
		if strings.Contains(other.Host, ":") {
			other.Host = "[" + other.Host + "]"
		}
	} else {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		other.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return []string{fullURL, other.String()}
}
