package haproxy

import (
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
)

// FromDecl reads a pool's `balancer haproxy { … }` block, which the checker
// has passed.
func FromDecl(pool string, b *lang.BlockDecl) (Pool, error) {
	p := Pool{Name: pool, Range: b.Kind.Range(), Retries: DefaultRetries}
	for _, set := range b.Settings {
		var word string
		var q lang.Quantity
		if len(set.Args) > 0 {
			if a := set.Args[0]; a.Word != nil {
				word = a.Word.Name
			} else if a.Value != nil {
				var err error
				if q, err = lang.Interpret(a.Value, lang.Invalid); err != nil {
					return p, fmt.Errorf("%s: %w", set.Pos, err)
				}
			}
		}
		seconds := time.Duration(q.Value * float64(time.Second))
		switch set.Key.Name {
		case "listen":
			p.Listen, p.ListenAt = q.Str, set.Args[0].Range()
		case "mode":
			p.Mode = word
		case "algorithm":
			p.Algorithm = word
		case "retries":
			p.Retries = int(q.Value)
		case "drain":
			p.Drain = seconds
		case "timeout":
			p.Timeout = seconds
		case "socket":
			p.Socket = q.Str
		case "backend":
			p.Backend = q.Str
		case "health":
			p.Health.Kind = word
			rest := set.Args[1:]
			if word == "http" && len(rest) > 0 {
				path, err := lang.Interpret(rest[0].Value, lang.String)
				if err != nil {
					return p, err
				}
				p.Health.Path = path.Str
				rest = rest[1:]
			}
			if len(rest) == 2 { // every D
				every, err := lang.Interpret(rest[1].Value, lang.Duration)
				if err != nil {
					return p, err
				}
				p.Health.Every = time.Duration(every.Value * float64(time.Second))
			}
		}
	}
	return p, nil
}
