package lang

import "sort"

// Source is a named policy text: a file, a -e argument, a REPL entry.
type Source struct {
	Name string
	Src  []byte
}

// Load parses and checks sources together as one policy. It returns the
// files it could parse, what the checker learned, and every diagnostic in
// source order.
func Load(srcs []Source, opts *Options) ([]*File, *Info, Diagnostics) {
	var (
		files []*File
		diags Diagnostics
	)
	order := map[string]int{}
	for i, s := range srcs {
		f, d := Parse(s.Name, s.Src)
		files = append(files, f)
		diags = append(diags, d...)
		order[s.Name] = i
	}
	info, d := Check(files, opts)
	diags = append(diags, d...)
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Range.Start, diags[j].Range.Start
		if a.Filename != b.Filename {
			return order[a.Filename] < order[b.Filename]
		}
		return a.Offset < b.Offset
	})
	return files, info, diags
}
