package lang

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// Format prints f in canonical form: one statement per line, blocks
// indented by two spaces, single spaces between tokens, literals exactly as
// written, trailing comments aligned, at most one blank line in a row. Every
// comment is kept. Formatting is idempotent, and the output parses to the
// same statements.
//
// f must have parsed without errors: Format prints only what was parsed.
func Format(f *File) []byte {
	p := &printer{src: f.Src, comments: f.Comments, atStart: true}
	p.stmts(f.Stmts)
	p.flushComments(-1)
	return p.render()
}

// outLine is one line of output; a blank line has neither part.
type outLine struct {
	code, comment string
}

// render writes the lines, aligning the trailing comments of each run of
// consecutive commented lines one space after the run's longest code (as
// gofmt does).
func (p *printer) render() []byte {
	var b bytes.Buffer
	for i := 0; i < len(p.lines); {
		j, width := i, 0
		for j < len(p.lines) && p.lines[j].comment != "" && p.lines[j].code != "" {
			width = max(width, utf8.RuneCountInString(p.lines[j].code))
			j++
		}
		if j == i { // no trailing comment here
			b.WriteString(p.lines[i].code)
			b.WriteByte('\n')
			i++
			continue
		}
		for ; i < j; i++ {
			l := p.lines[i]
			b.WriteString(l.code)
			b.WriteString(strings.Repeat(" ", width-utf8.RuneCountInString(l.code)+1))
			b.WriteString(l.comment)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

type printer struct {
	src        []byte
	comments   []Comment
	next       int // index of the next comment to print
	lines      []outLine
	indent     int
	atStart    bool  // nothing printed yet in the current block
	lastLine   int   // source line where the last thing printed ended
	lineStarts []int // offset of each source line, made on first use
}

// emit adds one output line.
func (p *printer) emit(code, comment string) {
	p.lines = append(p.lines, outLine{code: strings.Repeat("  ", p.indent) + code, comment: comment})
	p.atStart = false
}

// blankBefore keeps one blank line before something starting on source
// line n if the source had one there (and not between two statements that
// shared a line).
func (p *printer) blankBefore(n int) {
	if !p.atStart && n > 1 && n != p.lastLine && p.isBlank(n-1) {
		p.lines = append(p.lines, outLine{})
	}
}

func (p *printer) isBlank(n int) bool {
	if p.lineStarts == nil {
		p.lineStarts = []int{0}
		for i, c := range p.src {
			if c == '\n' {
				p.lineStarts = append(p.lineStarts, i+1)
			}
		}
	}
	if n < 1 || n > len(p.lineStarts) {
		return false
	}
	end := len(p.src)
	if n < len(p.lineStarts) {
		end = p.lineStarts[n]
	}
	return len(bytes.TrimSpace(p.src[p.lineStarts[n-1]:end])) == 0
}

// flushComments prints, on lines of their own, the comments that start
// before offset (all of them if offset < 0).
func (p *printer) flushComments(offset int) {
	for p.next < len(p.comments) {
		c := p.comments[p.next]
		if offset >= 0 && c.Pos.Offset >= offset {
			return
		}
		p.blankBefore(c.Pos.Line)
		p.emit(strings.TrimRight(c.Text, " \t\r"), "")
		p.lastLine = c.Pos.Line
		p.next++
	}
}

// trailing returns the comment on source line n after offset, if any, and
// consumes it.
func (p *printer) trailing(n, offset int) string {
	if p.next < len(p.comments) {
		c := p.comments[p.next]
		if c.Pos.Line == n && c.Pos.Offset >= offset {
			p.next++
			return strings.TrimRight(c.Text, " \t\r")
		}
	}
	return ""
}

// line prints a one-line node: comments before it, the code, and a
// trailing comment unless another statement follows on the same line.
func (p *printer) line(n Node, code string, nextLine int) {
	p.flushComments(n.Pos.Offset)
	p.blankBefore(n.Pos.Line)
	comment := ""
	if nextLine != n.EndPos.Line {
		comment = p.trailing(n.EndPos.Line, n.EndPos.Offset)
	}
	p.emit(code, comment)
	p.lastLine = n.EndPos.Line
}

// block prints `head {`, the body, and `}`. firstLine is the source line of
// the first thing in the body: a comment on the head's line belongs to the
// head only if the body starts below it.
func (p *printer) block(n Node, head string, body func(), firstLine, nextLine int) {
	p.flushComments(n.Pos.Offset)
	p.blankBefore(n.Pos.Line)
	comment := ""
	if firstLine != n.Pos.Line {
		comment = p.trailing(n.Pos.Line, n.Pos.Offset)
	}
	p.emit(head+" {", comment)
	p.lastLine = n.Pos.Line
	p.indent++
	p.atStart = true
	body()
	closeAt := n.EndPos.Offset - 1 // the '}'
	p.flushComments(closeAt)
	p.indent--
	comment = ""
	if nextLine != n.EndPos.Line {
		comment = p.trailing(n.EndPos.Line, n.EndPos.Offset)
	}
	p.emit("}", comment)
	p.lastLine = n.EndPos.Line
}

func (p *printer) stmts(stmts []*Stmt) {
	for i, s := range stmts {
		next := -1
		if i+1 < len(stmts) {
			next = stmts[i+1].Pos.Line
		}
		if s.Pool != nil {
			p.pool(s.Pool, next)
			continue
		}
		p.line(s.Node, stmtText(s), next)
	}
}

func (p *printer) pool(d *PoolDecl, next int) {
	first := -1
	if len(d.Items) > 0 {
		first = d.Items[0].Pos.Line
	}
	p.block(d.Node, "pool "+d.Name.Name, func() {
		for i, it := range d.Items {
			nextItem := d.EndPos.Line // the closing brace follows the last item
			if i+1 < len(d.Items) {
				nextItem = d.Items[i+1].Pos.Line
			}
			switch {
			case it.Provider != nil:
				p.blockDecl(it, "provider", it.Provider, nextItem)
			case it.Metric != nil:
				p.blockDecl(it, "metric "+it.Metric.Name.Name, it.Metric.Source, nextItem)
			case it.Balancer != nil:
				p.blockDecl(it, "balancer", it.Balancer, nextItem)
			case it.Volume != nil:
				p.blockDecl(it, "volume", it.Volume, nextItem)
			case it.Install != nil:
				p.provision(it, "install", it.Install, nextItem)
			case it.Configure != nil:
				p.provision(it, "configure", it.Configure, nextItem)
			default:
				p.line(it.Node, itemText(it), nextItem)
			}
		}
	}, first, next)
}

func (p *printer) blockDecl(it *PoolItem, word string, b *BlockDecl, next int) {
	head := word + " " + b.Kind.Name
	if b.Settings == nil && !bytes.Contains(p.src[it.Pos.Offset:it.EndPos.Offset], []byte("{")) {
		p.line(it.Node, head, next)
		return
	}
	first := -1
	if len(b.Settings) > 0 {
		first = b.Settings[0].Pos.Line
	}
	p.block(it.Node, head, func() {
		for i, s := range b.Settings {
			nextSet := it.EndPos.Line // the closing brace follows the last setting
			if i+1 < len(b.Settings) {
				nextSet = b.Settings[i+1].Pos.Line
			}
			p.line(s.Node, settingText(s), nextSet)
		}
	}, first, next)
}

// provision prints an install or configure block, one step a line.
func (p *printer) provision(it *PoolItem, word string, pr *Provision, next int) {
	first := -1
	if len(pr.Steps) > 0 {
		first = pr.Steps[0].Pos.Line
	}
	p.block(it.Node, word, func() {
		for i, st := range pr.Steps {
			nextStep := it.EndPos.Line
			if i+1 < len(pr.Steps) {
				nextStep = pr.Steps[i+1].Pos.Line
			}
			var text string
			switch {
			case st.Copy != nil:
				text = "copy " + st.Copy.Src.text()
				if st.Copy.Dst != nil {
					text += " to " + st.Copy.Dst.text()
				}
			case st.Run != nil:
				text = "run " + st.Run.text()
			case st.Other != nil:
				text = st.Other.Word.Name
				for _, a := range st.Other.Args {
					text += " " + argText(a)
				}
			}
			p.line(st.Node, text, nextStep)
		}
	}, first, next)
}

func settingText(s *Setting) string {
	var b strings.Builder
	b.WriteString(s.Key.Name)
	if s.Map != nil {
		b.WriteString(" " + mapText(s.Map))
	}
	for _, a := range s.Args {
		if a.Comma {
			b.WriteByte(',')
		}
		b.WriteString(" " + argText(a))
	}
	return b.String()
}

// mapText is `{ K = V, … }` on one line.
func mapText(m *Map) string {
	var b strings.Builder
	b.WriteString("{")
	for i, e := range m.Entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + e.Key.Name + " = " + e.Value.text())
	}
	if len(m.Entries) > 0 {
		b.WriteByte(' ')
	}
	b.WriteString("}")
	return b.String()
}

func itemText(it *PoolItem) string {
	switch {
	case it.Env != nil:
		return "env " + mapText(it.Env)
	case it.Instances != nil:
		s := "instances " + it.Instances.Min.text()
		if it.Instances.Max != nil {
			s += ".." + it.Instances.Max.text()
		}
		return s
	case it.Port != nil:
		return "port " + it.Port.text()
	case it.Check != nil:
		return "check every " + it.Check.text()
	case it.Cooldown != nil:
		return "cooldown " + it.Cooldown.text()
	case it.Standby != nil:
		return "standby " + it.Standby.text()
	case it.Heartbeat != nil:
		s := "heartbeat every " + it.Heartbeat.Every.text()
		if it.Heartbeat.Timeout != nil {
			s += " timeout " + it.Heartbeat.Timeout.text()
		}
		if it.Heartbeat.Recover != nil {
			s += " recover " + it.Heartbeat.Recover.text()
		}
		return s
	case it.Primary:
		return "primary"
	case it.Storage != nil:
		s := "storage " + it.Storage.Source.text() + " at " + it.Storage.Path.text()
		if it.Storage.Every != nil {
			s += " every " + it.Storage.Every.text()
		}
		return s
	case it.When != nil:
		return whenText(&it.When.WhenRule)
	case it.Keep != nil:
		return KeepText(it.Keep)
	case it.OnFailure != nil:
		return "on failure " + actionText(it.OnFailure.Action)
	case it.Every != nil:
		return everyText(it.Every)
	case it.At != nil:
		return atText(it.At)
	}
	return ""
}

// KeepText gives a keep rule's canonical text.
func KeepText(k *Keep) string {
	ref, agg := k.Metric()
	m := ref.String()
	if agg != "" {
		m = agg + "(" + m + ")"
	}
	s := "keep " + m + " at " + k.Target.text()
	if k.PerInstance {
		s += " per instance"
	}
	for _, o := range k.Options {
		switch {
		case o.Tolerance != nil:
			s += " tolerance " + o.Tolerance.text()
		case o.Up != nil:
			s += " up after " + o.Up.text()
		case o.Down != nil:
			s += " down after " + o.Down.text()
		}
	}
	return s
}

func stmtText(s *Stmt) string {
	switch {
	case s.When != nil:
		return whenText(&s.When.WhenRule)
	case s.OnFailure != nil:
		return "on failure " + actionText(s.OnFailure.Action)
	case s.Every != nil:
		return everyText(s.Every)
	case s.At != nil:
		return atText(s.At)
	case s.Let != nil:
		return "let " + s.Let.Name.Name + " = " + s.Let.Value.text()
	case s.Command != nil:
		return commandText(s.Command)
	}
	return ""
}

func whenText(w *WhenRule) string {
	s := "when " + exprText(&w.Cond.Expr)
	if w.For != nil {
		s += " for " + w.For.text()
	}
	return s + " " + actionText(w.Action)
}

func everyText(e *EveryJob) string {
	return "every " + e.Interval.text() + " " + actionText(e.Action)
}

func atText(a *AtSchedule) string {
	s := "at " + a.Time.text()
	if len(a.Days) > 0 {
		names := make([]string, len(a.Days))
		for i, d := range a.Days {
			names[i] = d.Name
		}
		s += " on " + strings.Join(names, ",")
	}
	if a.UTC {
		s += " UTC"
	}
	return s + " " + actionText(a.Action)
}

func actionText(a *Action) string {
	scale := func(verb string, s *Scale) string {
		out := verb
		if s.Count != nil {
			out += " " + s.Count.text()
		}
		if s.Unit != nil {
			out += " " + s.Unit.Name
		}
		return out
	}
	switch {
	case a.Add != nil:
		return scale("add", a.Add)
	case a.Remove != nil:
		return scale("remove", a.Remove)
	case a.Replace:
		return "replace instance"
	case a.Promote:
		return "promote standby"
	case a.Sync != nil:
		return syncText(a.Sync)
	case a.Exec != nil:
		s := "exec " + a.Exec.Command.text()
		if a.Exec.Timeout != nil {
			s += " timeout " + a.Exec.Timeout.text()
		}
		return s
	case a.Set != nil:
		return "set " + a.Set.Pool.Name + " " + a.Set.Limit.Name + " " + a.Set.Value.text()
	case a.Snapshot != nil:
		s := "snapshot " + a.Snapshot.Volume.String()
		if a.Snapshot.Keep != nil {
			s += " keep " + a.Snapshot.Keep.text()
		}
		return s
	}
	return ""
}

func syncText(s *Sync) string { return "sync " + s.Src.text() + " to " + s.Dst.text() }

func exprText(e *Expr) string {
	parts := []string{andText(e.Left)}
	for _, r := range e.Right {
		parts = append(parts, andText(r))
	}
	return strings.Join(parts, " or ")
}

func andText(a *AndExpr) string {
	parts := []string{notText(a.Left)}
	for _, r := range a.Right {
		parts = append(parts, notText(r))
	}
	return strings.Join(parts, " and ")
}

func notText(n *NotExpr) string {
	if n.Not != nil {
		return "not " + notText(n.Not)
	}
	s := operandString(n.Cmp.Left)
	if n.Cmp.Op != nil {
		s += " " + n.Cmp.Op.Op + " " + operandString(n.Cmp.Right)
	}
	return s
}

func operandString(o *Operand) string {
	if o.Paren != nil {
		return "(" + exprText(o.Paren) + ")"
	}
	return operandText(o)
}

func commandText(c *Command) string {
	verb := func(word string, v *Verb) string {
		s := word + " " + v.Name.Name
		for _, a := range v.Args {
			s += " "
			switch {
			case a.Host != nil:
				host := a.Host.Name
				if a.HostPool != nil {
					host = a.HostPool.Name + "/" + host
				}
				s += host + ":" + a.Str.text()
			case a.Str != nil:
				s += a.Str.text()
			case a.Pool != nil:
				s += a.Pool.Name + "/" + a.Word.Name
			default:
				s += a.Word.Name
			}
		}
		return s
	}
	switch {
	case c.Pool != nil:
		return verb("pool", c.Pool)
	case c.Instance != nil:
		return verb("instance", c.Instance)
	case c.Sync != nil:
		return syncText(c.Sync)
	case c.Show != nil:
		return verb("show", c.Show)
	case c.Metric != nil:
		return verb("metric", c.Metric)
	case c.Explain != nil:
		if c.Explain.Pool != nil {
			return "explain " + c.Explain.Pool.Name
		}
		return "explain"
	case c.Help != nil:
		if c.Help.Topic != nil {
			return "help " + c.Help.Topic.Name
		}
		return "help"
	}
	return ""
}

// RuleText, ActionText and AtText give the canonical one-line text of a
// rule, an action and an `at` schedule, as fmt writes them: the runtime
// names its rules and jobs by them.
func RuleText(w *WhenRule) string { return whenText(w) }
func ActionText(a *Action) string { return actionText(a) }
func AtText(a *AtSchedule) string { return atText(a) }

// CommandText gives a command's canonical text.
func CommandText(c *Command) string { return commandText(c) }
