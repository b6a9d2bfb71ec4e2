package hostsfile

import (
	"bytes"
	"strings"
)

// Mark is the comment that ends the line a pool's balancer owns: it is how
// the line is found again, whatever name or address it holds.
func Mark(pool string) string { return "# cloudspeak:" + pool }

// Line is the line that maps name to ip for pool's balancer.
func Line(pool, name, ip string) string { return ip + " " + name + " " + Mark(pool) }

// Rewrite returns a hosts file's content with exactly one line marked as
// pool's, mapping name to ip: in the place of the first line so marked
// (others so marked are dropped), or at the end. Every other line is kept
// as it was. A last line without its newline gets one when a line follows
// it. Rewriting what Rewrite returned returns it unchanged.
//
// shadowed are the numbers (from 1) of other lines above ours that map
// name too: a resolver reads /etc/hosts from the top, so theirs wins.
func Rewrite(old []byte, pool, name, ip string) (out []byte, shadowed []int) {
	mark := Mark(pool)
	line := Line(pool, name, ip)
	var b bytes.Buffer
	placed := false
	rest := old
	for n := 1; len(rest) > 0; n++ {
		l := rest
		nl := bytes.IndexByte(rest, '\n')
		if nl >= 0 {
			l, rest = rest[:nl+1], rest[nl+1:]
		} else {
			rest = nil
		}
		text := strings.TrimRight(string(l), " \t\r\n")
		if strings.HasSuffix(text, mark) && (len(text) == len(mark) || text[len(text)-len(mark)-1] == ' ' || text[len(text)-len(mark)-1] == '\t') {
			if !placed {
				b.WriteString(line + "\n")
				placed = true
			}
			continue
		}
		if !placed && maps(text, name) {
			shadowed = append(shadowed, n)
		}
		b.Write(l)
		if nl < 0 && !placed {
			b.WriteByte('\n') // our line follows
		}
	}
	if !placed {
		b.WriteString(line + "\n")
	}
	return b.Bytes(), shadowed
}

// maps says whether a hosts-file line maps name (hosts(5): an address,
// then names, then an optional comment; names are matched without case).
func maps(text, name string) bool {
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	f := strings.Fields(text)
	for _, h := range f[min(1, len(f)):] {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}
