package sms

import "unicode/utf16"

// Encodings reported by Segments.
const (
	EncodingGSM7 = "GSM-7"
	EncodingUCS2 = "UCS-2"
)

// GSM 03.38 basic character set (one septet each) and extension table
// (escape plus one septet).
const (
	gsmBasic     = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "^{}\\[~]|€\f"
)

var gsmWidth = func() map[rune]int {
	m := make(map[rune]int, len(gsmBasic)+len(gsmExtension))
	for _, r := range gsmBasic {
		m[r] = 1
	}
	for _, r := range gsmExtension {
		m[r] = 2
	}
	return m
}()

// Segments returns how many SMS segments body takes and its encoding:
// GSM-7 if every character is in the GSM 03.38 tables (160 septets in one
// segment, 153 per segment when concatenated), else UCS-2 (70 UTF-16 units,
// 67 when concatenated). A character is never split across segments.
func Segments(body string) (count int, encoding string) {
	if body == "" {
		return 0, EncodingGSM7
	}
	widths := make([]int, 0, len(body))
	total := 0
	gsm := true
	for _, r := range body {
		w, ok := gsmWidth[r]
		if !ok {
			gsm = false
			break
		}
		widths = append(widths, w)
		total += w
	}
	single, multi := 160, 153
	encoding = EncodingGSM7
	if !gsm {
		single, multi = 70, 67
		encoding = EncodingUCS2
		widths, total = widths[:0], 0
		for _, r := range body {
			w := len(utf16.Encode([]rune{r}))
			widths = append(widths, w)
			total += w
		}
	}
	if total <= single {
		return 1, encoding
	}
	count, used := 1, 0
	for _, w := range widths {
		if used+w > multi {
			count++
			used = 0
		}
		used += w
	}
	return count, encoding
}
