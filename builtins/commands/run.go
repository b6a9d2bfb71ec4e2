package commands

import (
	"context"
	"errors"
	"strings"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/lang"
)

// Parse reads a request's statements. They are checked as the language
// alone: a declaration among them is checked with the policy it joins, by
// the daemon that runs it.
func Parse(req control.Request) (*lang.File, lang.Source, lang.Diagnostics) {
	name := req.Source
	if name == "" {
		name = "-e"
	}
	src := lang.Source{Name: name, Src: []byte(req.Statements)}
	files, _, diags := lang.Load([]lang.Source{src}, nil)
	return files[0], src, diags
}

// DiagnosticsResponse reports a request's errors, with carets, as bad usage.
func DiagnosticsResponse(diags lang.Diagnostics, sources map[string][]byte, color bool) control.Response {
	var b strings.Builder
	(&lang.Printer{Sources: sources, Color: color}).Write(&b, diags)
	return control.Response{Error: b.String(), Status: 2}
}

// Run carries out the commands of a request's statements f, in order,
// stopping at the first that fails; declarations are not its business, and
// are passed over.
func Run(ctx context.Context, f *lang.File, req control.Request, env Env) control.Response {
	var out strings.Builder
	x := &commander{Env: env, req: req, out: &out}
	for _, s := range f.Stmts {
		if s.Command == nil {
			continue
		}
		if err := x.run(ctx, s.Command); err != nil {
			status := 1
			var ue usageErr
			if errors.As(err, &ue) {
				status = 2
			}
			return control.Response{Output: out.String(), Error: err.Error(), Status: status}
		}
		if x.exec != nil {
			return control.Response{Output: out.String(), Exec: x.exec}
		}
		if x.sync != nil {
			return control.Response{Output: out.String(), Sync: x.sync, Rest: rest(x.req.Statements, f, s)}
		}
	}
	return control.Response{Output: out.String()}
}

// rest returns the statements of src after stmt, with everything before
// them blanked (newlines kept), so their diagnostics keep their lines
// and columns.
func rest(src string, f *lang.File, stmt *lang.Stmt) string {
	for i, s := range f.Stmts {
		if s != stmt || i+1 == len(f.Stmts) {
			continue
		}
		off := f.Stmts[i+1].Pos.Offset
		if off <= 0 || off > len(src) {
			return ""
		}
		var b strings.Builder
		for _, c := range src[:off] {
			if c == '\n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(src[off:])
		return b.String()
	}
	return ""
}
