package templates

import (
	"strings"
	"testing"
)

func TestSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		want     int
		encoding string
	}{
		{"empty", "", 1, EncodingGSM7},
		{"short ASCII", "Hello", 1, EncodingGSM7},
		{"160 GSM-7", strings.Repeat("a", 160), 1, EncodingGSM7},
		{"161 GSM-7", strings.Repeat("a", 161), 2, EncodingGSM7},
		{"306 GSM-7", strings.Repeat("a", 306), 2, EncodingGSM7},
		{"307 GSM-7", strings.Repeat("a", 307), 3, EncodingGSM7},
		{"German umlauts stay GSM-7", strings.Repeat("äöüÄÖÜß", 20), 1, EncodingGSM7},
		{"euro counts two", strings.Repeat("a", 158) + "€", 1, EncodingGSM7},
		{"euro tips over 160", strings.Repeat("a", 159) + "€", 2, EncodingGSM7},
		{"bracket counts two", strings.Repeat("[", 80), 1, EncodingGSM7},
		{"bracket tips over 160", strings.Repeat("[", 80) + "a", 2, EncodingGSM7},
		// 152 septets then an escape pair: the pair does not fit in the 153
		// septets of segment one and moves whole into segment two.
		{"escape pair not split", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 10), 2, EncodingGSM7},
		{"escape pair not split at end", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), 3, EncodingGSM7},
		{"backtick is not GSM-7", "`", 1, EncodingUCS2},
		{"German quotes force UCS-2", "„Termin“", 1, EncodingUCS2},
		{"en dash forces UCS-2", "14:30 – 15:30", 1, EncodingUCS2},
		{"ellipsis forces UCS-2", "Bis bald…", 1, EncodingUCS2},
		{"70 UCS-2", "„" + strings.Repeat("a", 69), 1, EncodingUCS2},
		{"71 UCS-2", "„" + strings.Repeat("a", 70), 2, EncodingUCS2},
		{"134 UCS-2", "„" + strings.Repeat("a", 133), 2, EncodingUCS2},
		{"135 UCS-2", "„" + strings.Repeat("a", 134), 3, EncodingUCS2},
		{"emoji is a surrogate pair", "😀", 1, EncodingUCS2},
		{"35 emoji are 70 units", strings.Repeat("😀", 35), 1, EncodingUCS2},
		{"36 emoji are 72 units", strings.Repeat("😀", 36), 2, EncodingUCS2},
		// 66 units then a pair: the pair moves whole into segment two.
		{"surrogate pair not split", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 3), 2, EncodingUCS2},
		{"surrogate pairs fill 67-unit segments", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 66) + "😀", 3, EncodingUCS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, enc := Segments(tt.body)
			if n != tt.want || enc != tt.encoding {
				t.Errorf("Segments(%d runes) = %d, %s; want %d, %s", len([]rune(tt.body)), n, enc, tt.want, tt.encoding)
			}
		})
	}
}
