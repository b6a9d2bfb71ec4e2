package lang

import "github.com/cloudspeak/cloudspeak/internal/spell"

func nearest(word string, candidates []string) string { return spell.Nearest(word, candidates) }
