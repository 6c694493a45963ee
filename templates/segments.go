package templates

// Encodings reported by Segments.
const (
	EncodingGSM7 = "GSM-7"
	EncodingUCS2 = "UCS-2"
)

// Segments reports how many SMS segments body needs and in which encoding it
// goes out. A body made only of the GSM 03.38 basic and extension tables is
// GSM-7 (extension characters such as € or [ take two septets): 160 septets
// fit one segment, 153 each when concatenated. Anything else forces UCS-2,
// counted in UTF-16 code units (a surrogate pair counts two): 70 in one
// segment, 67 each when concatenated. An escape sequence or a surrogate pair
// is never split across segments, as real encoders do. An empty body is one
// segment.
func Segments(body string) (n int, encoding string) {
	septets := 0
	for _, r := range body {
		switch {
		case isGSM7Basic(r):
			septets++
		case isGSM7Extension(r):
			septets += 2
		default:
			return countSegments(body, 70, 67, utf16Units), EncodingUCS2
		}
	}
	if septets <= 160 {
		return 1, EncodingGSM7
	}
	return countSegments(body, 160, 153, gsm7Septets), EncodingGSM7
}

// countSegments fills segments of perPart units, moving a character that
// does not fit whole into the next segment.
func countSegments(body string, single, perPart int, width func(rune) int) int {
	total := 0
	for _, r := range body {
		total += width(r)
	}
	if total <= single {
		return 1
	}
	n, used := 1, 0
	for _, r := range body {
		w := width(r)
		if used+w > perPart {
			n++
			used = 0
		}
		used += w
	}
	return n
}

func gsm7Septets(r rune) int {
	if isGSM7Extension(r) {
		return 2
	}
	return 1
}

func utf16Units(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// isGSM7Basic reports whether r is in the GSM 03.38 basic character table.
func isGSM7Basic(r rune) bool {
	if r < 0x80 {
		switch {
		case r == '\n' || r == '\r':
			return true
		case r < 0x20 || r == 0x7f:
			return false
		}
		switch r {
		case '`', '[', '\\', ']', '^', '{', '|', '}', '~':
			return false
		}
		return true
	}
	switch r {
	case '£', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', 'Ø', 'ø', 'Å', 'å',
		'Δ', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ',
		'Æ', 'æ', 'ß', 'É', '¤', '¡', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
		'¿', 'ä', 'ö', 'ñ', 'ü', 'à':
		return true
	}
	return false
}

// isGSM7Extension reports whether r needs the escape to the GSM 03.38
// extension table (two septets).
func isGSM7Extension(r rune) bool {
	switch r {
	case '\f', '^', '{', '}', '\\', '[', '~', ']', '|', '€':
		return true
	}
	return false
}
