package spell

import "testing"

func TestNearest(t *testing.T) {
	keywords := []string{"pool", "when", "on", "every", "at", "let", "instance"}
	for word, want := range map[string]string{
		"wen":      "when",
		"wehn":     "when", // transposition
		"WHEN":     "when",
		"pol":      "pool",
		"instanse": "instance",
		"evry":     "every",
		"xyz":      "",   // nothing close
		"o":        "on", // one edit on a short word
		"banana":   "",
	} {
		if got := Nearest(word, keywords); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", word, got, want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 1}, {"load", "lod", 1}} {
		if got := distance(tc.a, tc.b); got != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
