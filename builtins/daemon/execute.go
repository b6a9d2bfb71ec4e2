package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/commands"
	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// Execute runs statements against the running policy. Declarations (pools,
// rules, jobs, let) join the policy at once, checked with it, and are kept
// until the daemon stops; then the commands run, in order.
func (d *Daemon) Execute(ctx context.Context, req control.Request) control.Response {
	f, src, diags := commands.Parse(req)
	sources := map[string][]byte{src.Name: src.Src}
	declares := false
	for _, s := range f.Stmts {
		declares = declares || s.Command == nil
	}
	if declares && !diags.HasErrors() {
		// Check with the running policy: a rule may name a pool declared
		// before, and a name must not be declared twice. One declaration
		// at a time: each reads the session and replaces the engine.
		d.reloadMu.Lock()
		d.mu.Lock()
		session := addSession(d.session, req.Session, src)
		d.mu.Unlock()
		var err error
		if d.cl != nil {
			// Checked with the cluster's policy, and published with it.
			_, _, err = loadSources(append(slices.Clone(d.cl.policy.files), session.sources()...))
		} else {
			_, _, err = Load(d.cfg.Policies, session.sources()...)
		}
		var perr *PolicyError
		switch {
		case errors.As(err, &perr):
			diags, sources = perr.Diagnostics, perr.Sources
		case err == nil && d.cl != nil:
			err = d.declareCluster(session)
		case err == nil:
			err = d.reload(session)
		}
		d.reloadMu.Unlock()
		if err != nil && perr == nil {
			return control.Response{Error: err.Error(), Status: 1}
		}
	}
	if diags.HasErrors() {
		return commands.DiagnosticsResponse(diags, sources, req.Color)
	}
	d.mu.Lock()
	e, prog, access := d.engine, d.prog, d.wired.access
	recent := append([]decision.Decision(nil), d.recent...)
	d.mu.Unlock()
	env := commands.Env{Engine: e, Local: d.local, Access: access, Recent: recent, StateDir: d.cfg.StateDir, Push: d.pushHere}
	if d.cl != nil {
		ce := d.clusterEngine(e, prog)
		env.Engine, env.Push, env.Recent = ce, ce.push, d.clusterRecent(ctx, prog)
	}
	return commands.Run(ctx, f, req, env)
}

// sessionSource is a source declared through Execute, and the REPL
// session it came from ("" for -e and files).
type sessionSource struct {
	key string
	src lang.Source
}

type session []sessionSource

func (s session) sources() []lang.Source {
	out := make([]lang.Source, len(s))
	for i, x := range s {
		out[i] = x.src
	}
	return out
}

// addSession returns the session with src added. A REPL session (key not
// "") names every statement "repl" and places it on the session's line
// (it pads it with blank lines), so that diagnostics say repl:LINE:COL:
// its statements are laid over each other into one source, which reads
// like the session's transcript of its declarations. Any other source is
// added on its own, and a name already taken (a second -e, a second REPL
// session) gets a number: -e#2, repl#2.
func addSession(s session, key string, src lang.Source) session {
	out := append(session(nil), s...)
	taken := map[string]bool{}
	for i, x := range out {
		if key != "" && x.key == key && strings.SplitN(x.src.Name, "#", 2)[0] == src.Name {
			out[i].src.Src = overlay(x.src.Src, src.Src)
			return out
		}
		taken[x.src.Name] = true
	}
	name := src.Name
	for n := 2; taken[name]; n++ {
		name = fmt.Sprintf("%s#%d", src.Name, n)
	}
	return append(out, sessionSource{key: key, src: lang.Source{Name: name, Src: src.Src}})
}

// overlay lays top's non-blank lines over base's.
func overlay(base, top []byte) []byte {
	b := strings.Split(string(base), "\n")
	t := strings.Split(string(top), "\n")
	for len(b) < len(t) {
		b = append(b, "")
	}
	for i, line := range t {
		if strings.TrimSpace(line) != "" {
			b[i] = line
		}
	}
	return []byte(strings.Join(b, "\n"))
}

// pushHere records a value pushed to a push metric of the running policy
// (metric set POOL NAME VALUE), for this daemon's engine.
func (d *Daemon) pushHere(pool, name, value string) (string, error) {
	d.mu.Lock()
	prog := d.prog
	d.mu.Unlock()
	var p *runtime.Pool
	if prog != nil {
		p = prog.Pool(pool)
	}
	if p == nil {
		return "", fmt.Errorf("no pool %q in the running policy", pool)
	}
	i := slices.IndexFunc(p.Metrics, func(m *runtime.DeclaredMetric) bool { return m.Name == name && m.Kind == "push" })
	if i < 0 {
		return "", fmt.Errorf("pool %s has no push metric %q: declare it with metric %s push { unit number }", pool, name, name)
	}
	m := p.Metrics[i]
	v, err := lang.ParseReading(value, m.Type)
	if err != nil {
		return "", fmt.Errorf("metric %s: %w", name, err)
	}
	at := d.pushes.Set(pool, name, v)
	return fmt.Sprintf("%s.%s = %s at %s", pool, name, decision.Format(v, m.Type), at.UTC().Format(time.RFC3339)), nil
}
