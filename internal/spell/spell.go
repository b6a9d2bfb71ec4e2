// Package spell suggests the nearest known word for a misspelt one, for
// "did you mean …?" hints.
//
// It knows words only.
package spell

import "strings"

// Nearest returns the candidate closest to word by edit distance, or "" if
// none is close enough to be a likely typo: at most one edit for short
// words, up to a third of the word's length for longer ones.
func Nearest(word string, candidates []string) string {
	best, bestDist := "", len(word)/3
	if bestDist < 1 {
		bestDist = 1
	}
	bestDist++ // strict "<" below
	lw := strings.ToLower(word)
	for _, c := range candidates {
		d := distance(lw, strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance (Levenshtein plus
// transposition of neighbours), which catches "wehn" as well as "wen".
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 1 << 30 // never a typo, and keeps the cost bounded
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
