package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	JSON       bool   `json:"json,omitempty"` // output as JSON
}

// Response is the daemon's answer.
type Response struct {
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
	Status int    `json:"status"` // the exit status for the client: 0, 1 or 2
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

func (d *Daemon) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var req Request
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error(), Status: 2})
		return
	}
	json.NewEncoder(c).Encode(d.Execute(context.Background(), req))
}

// Execute runs the commands in req.Statements against the running pools.
func (d *Daemon) Execute(ctx context.Context, req Request) Response {
	files, _, diags := lang.Load([]lang.Source{{Name: "-e", Src: []byte(req.Statements)}}, nil)
	f := files[0]
	if diags.HasErrors() {
		var b strings.Builder
		(&lang.Printer{Sources: map[string][]byte{"-e": []byte(req.Statements)}}).Write(&b, diags)
		return Response{Error: b.String(), Status: 2}
	}
	d.mu.Lock()
	e := d.engine
	recent := append([]runtime.Decision(nil), d.recent...)
	d.mu.Unlock()
	var out strings.Builder
	for _, s := range f.Stmts {
		if s.Command == nil {
			return Response{Output: out.String(), Error: fmt.Sprintf("%s: only commands can be sent to a running daemon; change the policy file and reload", s.Pos), Status: 2}
		}
		if err := command(ctx, e, s.Command, req.JSON, recent, &out); err != nil {
			status := 1
			var ue usageErr
			if errors.As(err, &ue) {
				status = 2
			}
			return Response{Output: out.String(), Error: err.Error(), Status: status}
		}
	}
	return Response{Output: out.String()}
}

type usageErr struct{ error }

// command carries out one command.
func command(ctx context.Context, e *runtime.Engine, c *lang.Command, asJSON bool, recent []runtime.Decision, out *strings.Builder) error {
	why := lang.CommandText(c)
	args := func(v *lang.Verb) []string {
		var a []string
		for _, x := range v.Args {
			if x.Word != nil {
				a = append(a, x.Word.Name)
			}
		}
		return a
	}
	pools := func(v *lang.Verb) []string {
		if a := args(v); len(a) > 0 {
			return a
		}
		return e.Pools()
	}
	switch {
	case c.Pool != nil:
		switch c.Pool.Name.Name {
		case "list":
			return list(e, pools(c.Pool), asJSON, out)
		case "start":
			for _, p := range pools(c.Pool) {
				if err := e.StartPool(p, why); err != nil {
					return usageErr{err}
				}
			}
			return nil
		case "stop":
			for _, p := range pools(c.Pool) {
				if err := e.StopPool(p, why); err != nil {
					return usageErr{err}
				}
			}
			return nil
		}
	case c.Instance != nil:
		a := args(c.Instance)
		switch c.Instance.Name.Name {
		case "start": // instance start in POOL
			pool := a[len(a)-1]
			for _, p := range e.Status().Pools {
				if p.Name == pool {
					_, err := e.SetTarget(pool, p.Target+1, why)
					return err
				}
			}
			return usageErr{fmt.Errorf("no pool %q", pool)}
		case "stop":
			name := a[0]
			for _, p := range e.Status().Pools {
				for _, in := range p.Instances {
					if in.Name == name || in.ID == name {
						return e.StopInstance(ctx, p.Name, in.Name, why)
					}
				}
			}
			return usageErr{fmt.Errorf("no instance %q", name)}
		}
	case c.Show != nil && c.Show.Name.Name == "pools":
		return list(e, e.Pools(), asJSON, out)
	case c.Explain != nil:
		names := e.Pools()
		if c.Explain.Pool != nil {
			names = []string{c.Explain.Pool.Name}
		}
		return explain(e, names, recent, out)
	}
	return usageErr{fmt.Errorf("%s: not available in this release", why)}
}

// list prints pools' instances in PoolParty's format, one line each:
//
//	0: INSTANCE: node0 - 127.0.0.2 - node0-4242-99 - 2026-11-23T00:12:05Z
//
// or, as JSON, the pools' status.
func list(e *runtime.Engine, names []string, asJSON bool, out *strings.Builder) error {
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
			if in.State != runtime.Running {
				fmt.Fprintf(out, " (%s)", in.State)
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
func explain(e *runtime.Engine, names []string, recent []runtime.Decision, out *strings.Builder) error {
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
		if p.Stopped {
			out.WriteString(", stopped")
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
			out.WriteString("\n")
		}
	}
	return nil
}

// Send sends a request to the daemon running on stateDir. It returns an
// error wrapping ErrNoDaemon if none listens there.
func Send(stateDir string, req Request) (Response, error) {
	c, err := net.DialTimeout("unix", filepath.Join(stateDir, SocketName), 2*time.Second)
	if err != nil {
		return Response{}, fmt.Errorf("%w on %s", ErrNoDaemon, stateDir)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("daemon on %s: %w", stateDir, err)
	}
	return resp, nil
}

// ErrNoDaemon says no daemon listens on a state directory.
var ErrNoDaemon = errors.New("no daemon runs")
