package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// SocketName is the control socket's name in the state directory.
const SocketName = "control.sock"

// Request is what a client sends on the control socket: statements, as in
// a policy file or after -e.
type Request struct {
	Statements string `json:"statements"`
	// Source names the statements in diagnostics: "-e", "repl:3", a file.
	Source string `json:"source,omitempty"`
	JSON   bool   `json:"json,omitempty"` // output as JSON
	// Dir is the client's working directory: relative local paths (scp)
	// are taken in it.
	Dir string `json:"dir,omitempty"`
	// Color asks for diagnostics with ANSI colors: the client writes to a
	// terminal.
	Color bool `json:"color,omitempty"`
	// Session identifies a REPL session: its declarations are kept as one
	// source (see addSession).
	Session string `json:"session,omitempty"`
}

// Response is the daemon's answer.
type Response struct {
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
	Status int    `json:"status"` // the exit status for the client: 0, 1 or 2
	// Notice is said on stderr whatever the status: that no daemon ran
	// and the command acted on the state directory.
	Notice string `json:"notice,omitempty"`
	// Exec, when set, is an interactive session the client runs itself on
	// its terminal (`instance ssh`).
	Exec *Exec `json:"exec,omitempty"`
	// Sync, when set, is a sync the client runs itself (SyncJob.Run); Rest
	// is the statements after it, for the client to send once it is done.
	Sync *SyncJob `json:"sync,omitempty"`
	Rest string   `json:"rest,omitempty"`
}

// Exec is an interactive shell on an instance, for the client to run.
type Exec struct {
	Instance string   `json:"instance"`
	Dir      string   `json:"dir,omitempty"` // for a local instance: its working directory
	Env      []string `json:"env,omitempty"` // added to the client's environment
	// SSH, for an instance reached over SSH, is how to log in; the client
	// dials it itself, so the shell has its terminal.
	SSH *SSHLogin `json:"ssh,omitempty"`
}

// SSHLogin is how to reach an instance over SSH: never a secret, only
// where the keys and known hosts are.
type SSHLogin struct {
	Host       string   `json:"host"`
	Port       int      `json:"port"`
	User       string   `json:"user"`
	KeyFiles   []string `json:"key_files,omitempty"`
	KnownHosts []string `json:"known_hosts,omitempty"`
	AcceptNew  bool     `json:"accept_new,omitempty"`
}

// serveControl listens on the state directory's control socket, mode 0600.
func (d *Daemon) serveControl() error {
	path := filepath.Join(d.cfg.StateDir, SocketName)
	os.Remove(path) // a stale socket: the state lock already keeps a second daemon out
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	d.control = ln
	d.wg.Add(1)
	go func() { // owned by the daemon: ends when Stop closes the listener
		defer d.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.handle(c)
			}()
		}
	}()
	return nil
}

// handle answers one request. The request must come within
// requestTimeout; executing it may take longer (instance cmd), but stops
// if the client goes away.
func (d *Daemon) handle(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	var req Request
	r := bufio.NewReader(c)
	if err := json.NewDecoder(r).Decode(&req); err != nil {
		c.SetWriteDeadline(time.Now().Add(requestTimeout))
		json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error(), Status: 2})
		return
	}
	c.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), executeTimeout)
	defer cancel()
	gone := make(chan struct{})
	go func() { // owned by handle: ends when the client closes or handle closes c
		defer close(gone)
		io.Copy(io.Discard, c) // returns when the client hangs up
		cancel()
	}()
	resp := d.Execute(ctx, req)
	c.SetWriteDeadline(time.Now().Add(requestTimeout))
	json.NewEncoder(c).Encode(resp)
	c.(*net.UnixConn).CloseWrite()
	c.SetReadDeadline(time.Now()) // wake the reader
	<-gone
}

const (
	requestTimeout = 30 * time.Second
	// executeTimeout bounds one request's work: long enough for `instance
	// cmd` to run an upgrade, short enough that nothing hangs forever.
	executeTimeout = 15 * time.Minute
)

// Execute runs statements against the running policy. Declarations (pools,
// rules, jobs, let) join the policy at once, checked with it, and are kept
// until the daemon stops; then the commands run, in order.
func (d *Daemon) Execute(ctx context.Context, req Request) Response {
	f, src, diags := parseRequest(req)
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
		_, _, err := Load(d.cfg.Policies, session.sources()...)
		var perr *PolicyError
		if errors.As(err, &perr) {
			diags, sources = perr.Diagnostics, perr.Sources
		} else if err == nil {
			err = d.reload(session)
		}
		d.reloadMu.Unlock()
		if err != nil && perr == nil {
			return Response{Error: err.Error(), Status: 1}
		}
	}
	if diags.HasErrors() {
		return diagnosticsResponse(diags, sources, req.Color)
	}
	d.mu.Lock()
	e, access := d.engine, d.wired.access
	recent := append([]runtime.Decision(nil), d.recent...)
	d.mu.Unlock()
	return runCommands(ctx, f, &commander{e: e, local: d.local, access: access, req: req, recent: recent, stateDir: d.cfg.StateDir})
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

// parseRequest reads a request's statements.
func parseRequest(req Request) (*lang.File, lang.Source, lang.Diagnostics) {
	name := req.Source
	if name == "" {
		name = "-e"
	}
	src := lang.Source{Name: name, Src: []byte(req.Statements)}
	files, _, diags := lang.Load([]lang.Source{src}, nil)
	return files[0], src, diags
}

// diagnosticsResponse reports a request's errors, with carets, as bad usage.
func diagnosticsResponse(diags lang.Diagnostics, sources map[string][]byte, color bool) Response {
	var b strings.Builder
	(&lang.Printer{Sources: sources, Color: color}).Write(&b, diags)
	return Response{Error: b.String(), Status: 2}
}

// runCommands runs a request's commands in order, stopping at the first
// that fails.
func runCommands(ctx context.Context, f *lang.File, x *commander) Response {
	var out strings.Builder
	x.out = &out
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
			return Response{Output: out.String(), Error: err.Error(), Status: status}
		}
		if x.exec != nil {
			return Response{Output: out.String(), Exec: x.exec}
		}
		if x.sync != nil {
			return Response{Output: out.String(), Sync: x.sync, Rest: rest(x.req.Statements, f, s)}
		}
	}
	return Response{Output: out.String()}
}

// list prints pools' instances in PoolParty's format, one line each:
//
//	0: INSTANCE: node0 - 127.0.0.2 - node0-4242-99 - 2026-11-23T00:12:05Z
//
// or, as JSON, the pools' status.
func list(e engine, names []string, asJSON bool, out *strings.Builder) error {
	st := e.Status()
	var sel []runtime.PoolStatus
	for _, n := range names {
		found := false
		for _, p := range st.Pools {
			if p.Name == n {
				sel = append(sel, p)
				found = true
			}
		}
		if !found {
			return usageErr{fmt.Errorf("no pool %q", n)}
		}
	}
	if asJSON {
		b, err := json.MarshalIndent(sel, "", "  ")
		if err != nil {
			return err
		}
		out.Write(b)
		out.WriteByte('\n')
		return nil
	}
	for _, p := range sel {
		if len(sel) > 1 {
			fmt.Fprintf(out, "%s:\n", p.Name)
		}
		for i, in := range p.Instances {
			host := in.Addr
			if h, _, err := net.SplitHostPort(in.Addr); err == nil {
				host = h
			}
			fmt.Fprintf(out, "%d: INSTANCE: %s - %s - %s - %s", i, in.Name, host, in.ID, in.Started.UTC().Format(time.RFC3339))
			var notes []string
			if in.State != runtime.Running {
				notes = append(notes, string(in.State))
			}
			if in.Role == runtime.Standby {
				notes = append(notes, "standby")
			} else if p.Primary && in.State == runtime.Running {
				notes = append(notes, "primary")
			}
			if in.Maintain {
				notes = append(notes, "maintenance")
			}
			if len(notes) > 0 {
				fmt.Fprintf(out, " (%s)", strings.Join(notes, ", "))
			}
			out.WriteByte('\n')
		}
	}
	return nil
}

// lastActions is how many of a pool's last actions explain shows.
const lastActions = 5

// explain says, for each rule of the pools, what it sees and waits for,
// and shows each pool's last actions.
func explain(e engine, names []string, recent []runtime.Decision, out *strings.Builder) error {
	now := time.Now()
	st := e.Status()
	for _, name := range names {
		var p *runtime.PoolStatus
		for i := range st.Pools {
			if st.Pools[i].Name == name {
				p = &st.Pools[i]
			}
		}
		if p == nil {
			return usageErr{fmt.Errorf("no pool %q", name)}
		}
		live := 0
		for _, in := range p.Instances {
			if in.State == runtime.Running || in.State == runtime.Starting {
				live++
			}
		}
		fmt.Fprintf(out, "pool %s: %d instances, target %d in %d..%d", p.Name, live, p.Target, p.Min, p.Max)
		switch {
		case p.Stopped:
			out.WriteString(", stopped (pool start to resume)")
		case p.Maintain:
			out.WriteString(", in maintenance: nothing started, stopped or replaced (pool start to resume)")
		}
		if p.Restart > 0 {
			fmt.Fprintf(out, "; rolling restart: %d left", p.Restart)
		}
		var maint []string
		for _, in := range p.Instances {
			if in.Maintain {
				maint = append(maint, in.Name)
			}
		}
		for _, cd := range []struct {
			dir   string
			until time.Time
		}{{"scale-out", p.OutUntil}, {"scale-in", p.InUntil}} {
			if left := cd.until.Sub(now); left > 0 {
				fmt.Fprintf(out, "; %s cooldown %s left", cd.dir, left.Round(time.Second))
			}
		}
		out.WriteString("\n")
		if len(maint) > 0 {
			fmt.Fprintf(out, "  under maintenance (drained, still running): %s\n", strings.Join(maint, ", "))
		}
		for _, r := range p.Rules {
			fmt.Fprintf(out, "  %s  %s\n", r.Pos, r.Text)
			var vals []string
			for _, v := range r.Values {
				vals = append(vals, v.String())
			}
			seen := "no data"
			if len(vals) > 0 {
				seen = strings.Join(vals, " ")
			}
			state := "not holding"
			switch {
			case r.Held:
				state = "held: a metric has no data"
			case !r.PendingSince.IsZero() && r.For > 0:
				state = fmt.Sprintf("pending since %s (%s of %s)", r.PendingSince.Format(time.TimeOnly),
					now.Sub(r.PendingSince).Round(time.Second), r.For)
			case !r.PendingSince.IsZero():
				state = "holding"
			}
			if r.Suppressed != "" {
				state += "; suppressed: " + r.Suppressed
			}
			fmt.Fprintf(out, "      now: %s; %s\n", seen, state)
		}
		if !p.StartAfter.IsZero() && p.StartAfter.After(now) {
			fmt.Fprintf(out, "  backing off: instances failed soon after starting; no new instance until %s\n", p.StartAfter.Format(time.TimeOnly))
		}
		var acts []runtime.Decision
		for _, d := range recent {
			if d.Pool == name && d.Action != "suppressed" && d.Action != "held" {
				acts = append(acts, d)
			}
		}
		if len(acts) > lastActions {
			acts = acts[len(acts)-lastActions:]
		}
		if len(acts) > 0 {
			out.WriteString("  last actions:\n")
		}
		for _, d := range acts {
			fmt.Fprintf(out, "    %s %s → %d", d.Time.Format(time.TimeOnly), d.Action, d.Instances)
			if d.Rule != "" {
				fmt.Fprintf(out, "  %s", d.Rule)
				if d.Pos.Line > 0 {
					fmt.Fprintf(out, " (%s)", d.Pos)
				}
			}
			for _, v := range d.Values {
				out.WriteString(" " + v.String())
			}
			if d.Outcome != "" {
				out.WriteString(": " + d.Outcome)
			}
			if len(d.Probes) > 0 {
				out.WriteString(" [probes: " + strings.Join(d.Probes, "; ") + "]")
			}
			out.WriteString("\n")
		}
	}
	return nil
}

// Client is a daemon to send statements to: the one running on a state
// directory (Dial), or one in this process (*Daemon).
type Client interface {
	Execute(ctx context.Context, req Request) Response
}

// Dial returns a client for the daemon running on stateDir, or an error
// wrapping ErrNoDaemon if none listens there.
func Dial(stateDir string) (Client, error) {
	c, err := net.DialTimeout("unix", filepath.Join(stateDir, SocketName), 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w on %s", ErrNoDaemon, stateDir)
	}
	c.Close()
	return socketClient(stateDir), nil
}

type socketClient string

func (s socketClient) Execute(ctx context.Context, req Request) Response {
	resp, err := SendContext(ctx, string(s), req)
	if err != nil {
		return Response{Error: err.Error(), Status: 1}
	}
	return resp
}

// Send sends a request to the daemon running on stateDir. It returns an
// error wrapping ErrNoDaemon if none listens there.
func Send(stateDir string, req Request) (Response, error) {
	return SendContext(context.Background(), stateDir, req)
}

// SendContext is Send, given up when ctx ends: the daemon then stops
// what it runs for the request.
func SendContext(ctx context.Context, stateDir string, req Request) (Response, error) {
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	c, err := dialer.DialContext(dctx, "unix", filepath.Join(stateDir, SocketName))
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		return Response{}, fmt.Errorf("%w on %s", ErrNoDaemon, stateDir)
	}
	defer c.Close()
	// The long deadline first: set after, it would undo a cancellation
	// that came in between.
	c.SetDeadline(time.Now().Add(executeTimeout + time.Minute))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		return Response{}, fmt.Errorf("daemon on %s: %w", stateDir, err)
	}
	return resp, nil
}

// ErrNoDaemon says no daemon listens on a state directory.
var ErrNoDaemon = errors.New("no daemon runs")
