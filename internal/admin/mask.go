package admin

import (
	"strings"

	"github.com/termind/termind/internal/store"
)

// maskRecipient shows enough of an address or number to tell two apart at
// a glance, not to use or guess it: "a***@e***.org", "+49******678". The
// number of stars is fixed so that lengths are not shown either.
func maskRecipient(channel, to string) string {
	if channel == store.ChannelEmail {
		return maskEmail(to)
	}
	return maskPhone(to)
}

func maskEmail(to string) string {
	at := strings.LastIndexByte(to, '@')
	if at <= 0 || at == len(to)-1 {
		return "***"
	}
	local, domain := to[:at], to[at+1:]
	out := firstRune(local) + "***@"
	dot := strings.LastIndexByte(domain, '.')
	if dot <= 0 || dot == len(domain)-1 {
		return out + firstRune(domain) + "***"
	}
	return out + firstRune(domain) + "***" + domain[dot:]
}

func maskPhone(to string) string {
	// Country code and the last three digits; at least five digits hidden.
	if len(to) < 3+5+3 {
		return "******"
	}
	return to[:3] + "******" + to[len(to)-3:]
}

func firstRune(s string) string {
	for _, r := range s {
		return string(r)
	}
	return ""
}
