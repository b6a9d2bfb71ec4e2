// Package commands carries out the statements operators type: PoolParty's
// pool and instance commands, show, explain (why), sync and help, against
// a running engine or, with no daemon (Offline), the state the last one
// left. It knows nothing of how a daemon runs, reloads or serves: the daemon
// hands it the engine and how to reach each pool's instances (Env).
package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fatih/color"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/builtins/local"
	"github.com/cloudspeak/cloudspeak/builtins/ssh"
	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// usageErr is a command used wrong (a pool or instance that does not
// exist): exit status 2 rather than 1.
type usageErr struct{ error }

// Engine is what commands act on: the running *runtime.Engine, or, with
// no daemon, the state the last one left (see Offline).
type Engine interface {
	Status() runtime.Status
	Pools() []string
	SetTarget(pool string, n int, why string) (int, error)
	StartPool(pool, why string) error
	StopPool(pool, why string) error
	MaintainPool(pool, why string) error
	RestartPool(pool, why string) (int, error)
	StopInstance(ctx context.Context, pool, name, why string) error
	MaintainInstance(ctx context.Context, name string, on bool, why string) (pool, drain string, err error)
}

// Access is how commands reach a pool's instances, and the pool's
// provisioning steps.
type Access struct {
	Remote    runtime.Remote // commands and copies: local exec, or SSH
	Install   []runtime.Step
	Configure []runtime.Step
	Dir       string            // the declaring policy file's directory: copy sources are relative to it
	Login     *control.SSHLogin // for instance ssh over SSH; nil for a local pool
	Target    func(runtime.Instance) (ssh.Target, error)
	Imager    runtime.Imager // instance image; nil for a provider without images
}

// Env is what a request's commands act on.
type Env struct {
	Engine Engine
	Local  *local.Provider     // shells, commands and copies on local instances
	Access map[string]*Access  // by pool; nil without a daemon (local only)
	Recent []decision.Decision // the last decisions, for explain
	// StateDir is the daemon's (or, offline, the client's) state
	// directory: syncs journal their multipart uploads there.
	StateDir string
	// Push records a value pushed to a pool's push metric (metric set),
	// given as written, and says what it recorded.
	Push func(pool, metric, value string) (string, error)
	// offline is the state directory when no daemon runs (see Offline).
	offline string
}

// commander carries out the commands of one request.
type commander struct {
	Env
	req  control.Request
	out  *strings.Builder
	exec *control.Exec    // set by instance ssh
	sync *control.SyncJob // set by sync
}

// cmdParallel bounds how many instances `instance cmd` runs on at once:
// enough for a fleet's SSH sessions to overlap, few enough not to trip an
// sshd's MaxStartups or the local file descriptor limit.
const cmdParallel = 32

// remote returns how to reach the instances of pool.
func (x *commander) remote(pool string) runtime.Remote {
	if a := x.Access[pool]; a != nil && a.Remote != nil {
		return a.Remote
	}
	return x.Local
}

func (x *commander) run(ctx context.Context, c *lang.Command) error {
	why := lang.CommandText(c)
	switch {
	case c.Pool != nil:
		names, err := x.pools(c.Pool)
		if err != nil {
			return err
		}
		return x.pool(c.Pool.Name.Name, names, why)
	case c.Instance != nil:
		return x.instance(ctx, c.Instance, why)
	case c.Show != nil:
		names, err := x.pools(c.Show)
		if err != nil {
			return err
		}
		return x.show(c.Show.Name.Name, names)
	case c.Help != nil:
		topic := ""
		if c.Help.Topic != nil {
			topic = c.Help.Topic.Name
		}
		text, err := lang.HelpText(topic)
		if err != nil {
			return usageErr{err}
		}
		x.out.WriteString(text)
		return nil
	case c.Sync != nil:
		src, err1 := lang.Interpret(c.Sync.Src, lang.String)
		dst, err2 := lang.Interpret(c.Sync.Dst, lang.String)
		if err := errors.Join(err1, err2); err != nil {
			return usageErr{err}
		}
		if x.req.Dir == "" && (!strings.HasPrefix(src.Str, "s3://") && !filepath.IsAbs(src.Str) || !strings.HasPrefix(dst.Str, "s3://") && !filepath.IsAbs(dst.Str)) {
			return usageErr{fmt.Errorf("sync: a relative path needs the client's directory; give an absolute path")}
		}
		x.sync = &control.SyncJob{Src: src.Str, Dst: dst.Str, Dir: x.req.Dir, StateDir: x.StateDir, JSON: x.req.JSON}
		return nil
	case c.Metric != nil:
		if x.offline != "" || x.Push == nil {
			return errNeedsDaemon{x.offline, "metric set"}
		}
		a := c.Metric.Args
		if len(a) != 3 || a[0].Word == nil || a[1].Word == nil || a[2].Str == nil {
			return usageErr{errors.New("usage: metric set POOL NAME VALUE")}
		}
		msg, err := x.Push(a[0].Word.Name, a[1].Word.Name, a[2].Str.ReadingText())
		if err != nil {
			return usageErr{err}
		}
		x.out.WriteString(msg + "\n")
		return nil
	case c.Explain != nil:
		if x.offline != "" {
			return errNeedsDaemon{x.offline, "explain"}
		}
		names := x.Engine.Pools()
		if c.Explain.Pool != nil {
			if _, err := x.status(c.Explain.Pool.Name); err != nil {
				return err
			}
			names = []string{c.Explain.Pool.Name}
		}
		if x.req.JSON {
			return x.json(explainJSON(x.Engine, names, x.Recent))
		}
		return explain(x.Engine, names, x.Recent, x.out)
	}
	return fmt.Errorf("%s: not available in this release", why)
}

// words returns a verb's plain-word arguments (POOL/NODE as one).
func words(v *lang.Verb) []string {
	var a []string
	for _, x := range v.Args {
		if x.Word != nil {
			a = append(a, ref(x))
		}
	}
	return a
}

// pools returns the pool a verb names, or every pool.
func (x *commander) pools(v *lang.Verb) ([]string, error) {
	a := words(v)
	if len(a) == 0 {
		return x.Engine.Pools(), nil
	}
	if _, err := x.status(a[0]); err != nil {
		return nil, err
	}
	return a, nil
}

func (x *commander) status(pool string) (runtime.PoolStatus, error) {
	for _, p := range x.Engine.Status().Pools {
		if p.Name == pool {
			return p, nil
		}
	}
	return runtime.PoolStatus{}, usageErr{fmt.Errorf("no pool %q (pools: %s)", pool, strings.Join(x.Engine.Pools(), ", "))}
}

func (x *commander) pool(verb string, names []string, why string) error {
	for _, p := range names {
		var err error
		switch verb {
		case "list":
			return list(x.Engine, names, x.req.JSON, x.out)
		case "start":
			if err = x.Engine.StartPool(p, why); err == nil {
				fmt.Fprintf(x.out, "pool %s: started: rules and failure handling run (watch: pool list %s)\n", p, p)
			}
		case "stop":
			if err = x.Engine.StopPool(p, why); err == nil {
				fmt.Fprintf(x.out, "pool %s: stopping its instances; it stays declared (pool start %s resumes)\n", p, p)
			}
		case "maintain":
			if err = x.Engine.MaintainPool(p, why); err == nil {
				fmt.Fprintf(x.out, "pool %s: in maintenance; nothing is started, stopped or replaced until: pool start %s\n", p, p)
			}
		case "restart":
			var n int
			if n, err = x.Engine.RestartPool(p, why); err == nil {
				fmt.Fprintf(x.out, "pool %s: restarting %d instances, one at a time (watch: pool list %s)\n", p, n, p)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// instances returns the running instances a word names: all, a pool's, or
// one by name, POOL/NAME or ID. A name that two pools' instances share is
// refused, with what to write instead, wherever it is used: a command must
// not run on both when one was meant.
func (x *commander) instances(word string) ([]runtime.Instance, error) {
	st := x.Engine.Status()
	pool, name, qualified := strings.Cut(word, "/")
	if !qualified {
		pool, name = "", word
	}
	var out []runtime.Instance
	byName := false
	for _, p := range st.Pools {
		for _, in := range p.Instances {
			if in.State != runtime.Running {
				continue
			}
			whole := !qualified && (word == "all" || word == p.Name)
			if whole || (pool == "" || pool == p.Name) && (name == in.Name || name == in.ID) {
				out = append(out, in)
				byName = byName || !whole && name == in.Name
			}
		}
	}
	if len(out) == 0 {
		return nil, notRunning(st, word)
	}
	if byName && len(out) > 1 {
		// Names are unique within a pool, not across pools.
		var refs []string
		for _, in := range out {
			refs = append(refs, fmt.Sprintf("%s/%s (%s)", in.Pool, in.Name, in.ID))
		}
		return nil, usageErr{fmt.Errorf("%q names an instance in %d pools: give POOL/NODE or the ID instead: %s", word, len(out), strings.Join(refs, ", "))}
	}
	return out, nil
}

// ref returns the instance an argument names, as instances takes it:
// NODE, POOL/NODE or an ID.
func ref(a *lang.CmdArg) string {
	if a.Pool != nil {
		return a.Pool.Name + "/" + a.Word.Name
	}
	if a.Host != nil {
		if a.HostPool != nil {
			return a.HostPool.Name + "/" + a.Host.Name
		}
		return a.Host.Name
	}
	if a.Word != nil {
		return a.Word.Name
	}
	return ""
}

// notRunning says why word names no running instance: a pool whose
// instances are still starting (or none) is not a typo.
func notRunning(st runtime.Status, word string) error {
	for _, p := range st.Pools {
		if word == p.Name || word == "all" {
			return fmt.Errorf("pool %s has no running instance yet (%d of target %d starting or down): try again, or see pool list", p.Name, len(p.Instances), p.Target)
		}
	}
	return usageErr{fmt.Errorf("no running instance %q", word)}
}

func (x *commander) instance(ctx context.Context, v *lang.Verb, why string) error {
	a := words(v)
	switch v.Name.Name {
	case "start": // instance start in POOL
		pool := a[len(a)-1]
		p, err := x.status(pool)
		if err != nil {
			return err
		}
		_, err = x.Engine.SetTarget(pool, p.Target+1, why)
		return err
	case "stop":
		in, err := x.one(a[0])
		if err != nil {
			return err
		}
		return x.Engine.StopInstance(ctx, in.Pool, in.Name, why)
	case "start_maintain", "stop_maintain":
		on := v.Name.Name == "start_maintain"
		in, err := x.one(a[0])
		if err != nil {
			return err
		}
		pool, drain, err := x.Engine.MaintainInstance(ctx, in.ID, on, why)
		if err != nil {
			return err
		}
		if on {
			if drain != "" {
				drain = " (" + drain + ")"
			}
			fmt.Fprintf(x.out, "%s (pool %s): under maintenance: no new work%s, still running; put back with: instance stop_maintain %s\n", a[0], pool, drain, a[0])
		} else {
			fmt.Fprintf(x.out, "%s (pool %s): back in service\n", a[0], pool)
		}
		return nil
	case "cmd":
		return x.cmd(ctx, v)
	case "scp":
		return x.scp(ctx, v)
	case "ssh":
		in, err := x.one(a[0])
		if err != nil {
			return err
		}
		x.exec, err = x.session(in)
		return err
	case "logs":
		return x.logs(ctx, v)
	case "install", "reconfigure":
		return x.provision(ctx, v.Name.Name, a[0])
	case "image":
		return x.image(ctx, v, why)
	}
	return usageErr{fmt.Errorf("unknown instance command %q", v.Name.Name)}
}

// one returns the running instance named word.
func (x *commander) one(word string) (runtime.Instance, error) {
	ins, err := x.instances(word)
	if err != nil {
		return runtime.Instance{}, err
	}
	_, name, qualified := strings.Cut(word, "/")
	if !qualified {
		name = word
	}
	if len(ins) > 1 || ins[0].Name != name && ins[0].ID != name {
		return runtime.Instance{}, usageErr{fmt.Errorf("%q is a pool, not an instance", word)}
	}
	return ins[0], nil
}

// cmd runs `instance cmd TARGET "COMMAND"` on every instance TARGET names,
// cmdParallel at a time. Each instance's output is printed as its own
// block of lines prefixed by its name (never interleaved), then one summary
// line; the command fails if it failed anywhere.
func (x *commander) cmd(ctx context.Context, v *lang.Verb) error {
	q, err := lang.Interpret(v.Args[1].Str, lang.String)
	if err != nil {
		return err
	}
	ins, err := x.instances(ref(v.Args[0]))
	if err != nil {
		return err
	}
	outs := make([]bytes.Buffer, len(ins))
	errs := make([]error, len(ins))
	sem := make(chan struct{}, cmdParallel)
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func() { // owned by cmd, which waits for all
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = x.remote(in.Pool).Run(ctx, in, q.Str, &outs[i])
		}()
	}
	wg.Wait()
	var failed []string
	for i, in := range ins {
		prefix := in.Name + ":"
		if x.req.Color {
			prefix = prefixColor(i).Sprint(prefix)
		}
		for _, line := range strings.SplitAfter(outs[i].String(), "\n") {
			if line != "" {
				fmt.Fprintf(x.out, "%s %s", prefix, line)
				if !strings.HasSuffix(line, "\n") {
					x.out.WriteByte('\n')
				}
			}
		}
		if errs[i] != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", in.Name, errs[i]))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d instances failed (%s)", len(failed), len(ins), strings.Join(failed, "; "))
	}
	fmt.Fprintf(x.out, "%d of %d instances: ok\n", len(ins), len(ins))
	return nil
}

// prefixColors tell instances apart in `instance cmd`'s output on a
// terminal.
var prefixColors = []*color.Color{
	color.New(color.FgCyan), color.New(color.FgMagenta), color.New(color.FgYellow),
	color.New(color.FgGreen), color.New(color.FgBlue), color.New(color.FgHiCyan),
}

func prefixColor(i int) *color.Color {
	c := *prefixColors[i%len(prefixColors)]
	c.EnableColor() // the client asked for color: it writes to a terminal, we do not
	return &c
}

// provision runs `instance install` (install, then configure steps) or
// `instance reconfigure` (configure steps) on one instance.
func (x *commander) provision(ctx context.Context, verb, word string) error {
	in, err := x.one(word)
	if err != nil {
		return err
	}
	acc := x.Access[in.Pool]
	if acc == nil {
		if x.offline != "" {
			return errNeedsDaemon{x.offline, "instance " + verb}
		}
		return fmt.Errorf("pool %s: no provisioning steps", in.Pool)
	}
	steps := acc.Configure
	if verb == "install" {
		steps = append(append([]runtime.Step(nil), acc.Install...), acc.Configure...)
	}
	if len(steps) == 0 {
		block := "configure"
		if verb == "install" {
			block = "install or configure"
		}
		return usageErr{fmt.Errorf("pool %s has no %s steps: add e.g. %s { copy \"./site\" to \"/srv/www\"; run \"…\" } to it", in.Pool, block, strings.Fields(block)[0])}
	}
	if err := runtime.Provision(ctx, acc.Remote, in, steps, acc.Dir, x.out, true); err != nil {
		return err
	}
	unit := "steps"
	if len(steps) == 1 {
		unit = "step"
	}
	fmt.Fprintf(x.out, "%s (pool %s): %s done (%d %s)\n", in.Name, in.Pool, verb, len(steps), unit)
	return nil
}

// scp copies a file or directory to or from an instance.
func (x *commander) scp(ctx context.Context, v *lang.Verb) error {
	var local, remote, node string
	for _, a := range v.Args {
		q, err := lang.Interpret(a.Str, lang.String)
		if err != nil {
			return err
		}
		if a.Host != nil {
			node, remote = ref(a), q.Str
		} else {
			local = q.Str
		}
	}
	toInstance := v.Args[1].Host != nil
	if !filepath.IsAbs(local) {
		if x.req.Dir == "" {
			return usageErr{fmt.Errorf("%q: a relative path needs the client's directory; give an absolute path", local)}
		}
		local = filepath.Join(x.req.Dir, local)
	}
	in, err := x.one(node)
	if err != nil {
		return err
	}
	return x.remote(in.Pool).Copy(ctx, in, local, remote, toInstance)
}

// show prints pools, instances, rules or schedules.
func (x *commander) show(topic string, names []string) error {
	switch topic {
	case "pools":
		return list(x.Engine, names, x.req.JSON, x.out)
	case "instances":
		st := x.Engine.Status()
		if x.req.JSON {
			var all []runtime.Instance
			for _, p := range st.Pools {
				if slices.Contains(names, p.Name) {
					all = append(all, p.Instances...)
				}
			}
			return x.json(all)
		}
		// In a cluster, which daemon leads each instance's pool.
		clustered := slices.ContainsFunc(st.Pools, func(p runtime.PoolStatus) bool { return p.Leader != "" || p.Unled != "" })
		last := func(started, leader string) string {
			if !clustered {
				return started
			}
			if leader == "" {
				leader = "-"
			}
			return fmt.Sprintf("%-20s %s", started, leader)
		}
		// Where each instance is, for pools spread over zones.
		zoned := slices.ContainsFunc(st.Pools, func(p runtime.PoolStatus) bool {
			return slices.ContainsFunc(p.Instances, func(in runtime.Instance) bool { return in.Zone != "" })
		})
		addr := func(addr, zone string) string {
			if !zoned {
				return fmt.Sprintf("%-21s", addr)
			}
			if zone == "" {
				zone = "-"
			}
			return fmt.Sprintf("%-21s %-12s", addr, zone)
		}
		fmt.Fprintf(x.out, "%-12s %-8s %-10s %-9s %s %s\n", "POOL", "NAME", "STATE", "ROLE", addr("ADDRESS", "ZONE"), last("STARTED", "LED BY"))
		for _, p := range st.Pools {
			if !slices.Contains(names, p.Name) {
				continue
			}
			for _, in := range p.Instances {
				state := string(in.State)
				if in.Maintain {
					state += ",maint"
				}
				role := string(in.Role)
				if p.Primary && in.Role == runtime.Serving {
					role = "primary"
				}
				fmt.Fprintf(x.out, "%-12s %-8s %-10s %-9s %s %s\n", p.Name, in.Name, state, role, addr(in.Addr, in.Zone), last(in.Started.UTC().Format(time.RFC3339), p.Leader))
			}
		}
	case "rules":
		st := x.Engine.Status()
		if x.req.JSON {
			rules := map[string][]runtime.RuleStatus{}
			for _, p := range st.Pools {
				if slices.Contains(names, p.Name) {
					rules[p.Name] = p.Rules
				}
			}
			return x.json(rules)
		}
		for _, p := range st.Pools {
			if !slices.Contains(names, p.Name) {
				continue
			}
			for _, r := range p.Rules {
				fmt.Fprintf(x.out, "%-12s %-22s %s\n", p.Name, r.Pos, r.Text)
			}
		}
	case "schedules":
		st := x.Engine.Status()
		jobs := st.Jobs[:0:0]
		for _, j := range st.Jobs {
			if j.Pool == "" || slices.Contains(names, j.Pool) {
				jobs = append(jobs, j)
			}
		}
		if x.req.JSON {
			return x.json(jobs)
		}
		sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].Next.Before(jobs[j].Next) })
		for _, j := range jobs {
			next := "never"
			if !j.Next.IsZero() {
				next = j.Next.Local().Format("2006-01-02 15:04:05 MST")
			}
			if j.Running {
				next += " (running now)"
			}
			fmt.Fprintf(x.out, "%-25s %-22s %s\n", next, j.Pos, j.Text)
		}
	}
	return nil
}

func (x *commander) json(v any) error { return jsonout.Write(x.out, v) }

// image makes a machine image of an instance: `instance image INSTANCE
// [as NAME] [no_reboot]`. The name defaults to POOL-INSTANCE-TIME (UTC).
func (x *commander) image(ctx context.Context, v *lang.Verb, why string) error {
	a := words(v)
	in, err := x.one(a[0])
	if err != nil {
		return err
	}
	acc := x.Access[in.Pool]
	if acc == nil || acc.Imager == nil {
		if x.offline != "" {
			return errNeedsDaemon{x.offline, "instance image"}
		}
		return fmt.Errorf("pool %s: its provider makes no images (provider ec2 does)", in.Pool)
	}
	reboot := a[len(a)-1] != "no_reboot"
	name := fmt.Sprintf("%s-%s-%s", in.Pool, in.Name, time.Now().UTC().Format("20060102-150405"))
	for i, arg := range v.Args {
		if arg.Word == nil || arg.Word.Name != "as" || i+1 == len(v.Args) {
			continue
		}
		if next := v.Args[i+1]; next.Word != nil {
			name = next.Word.Name
		} else if q, err := lang.Interpret(next.Str, lang.String); err == nil {
			name = q.Str
		}
	}
	if reboot && !in.Maintain {
		// The reboot would fail the instance's heartbeat probes, and its
		// failure handler would replace it mid-copy: it is under
		// maintenance (not probed, out of rotation) until the image is made.
		p, err := x.status(in.Pool)
		if err != nil {
			return err
		}
		if p.Primary && in.Role == runtime.Serving {
			return usageErr{fmt.Errorf("%s is pool %s's primary: its reboot would stop the service (and fail it over); image a standby (the same software), or give no_reboot", in.Name, in.Pool)}
		}
		if _, _, err := x.Engine.MaintainInstance(ctx, in.ID, true, why); err != nil {
			return err
		}
		fmt.Fprintf(x.out, "%s: under maintenance while it reboots for the image\n", in.Name)
		defer func() {
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if _, _, err := x.Engine.MaintainInstance(bctx, in.ID, false, why); err != nil {
				fmt.Fprintf(x.out, "%s: still under maintenance (%v): instance stop_maintain %s/%s\n", in.Name, err, in.Pool, in.Name)
				return
			}
			fmt.Fprintf(x.out, "%s: back in service\n", in.Name)
		}()
	}
	if !reboot {
		fmt.Fprintf(x.out, "warning: no_reboot: %s keeps running while it is copied, so its file systems may not be consistent in the image (writes in flight are lost); leave no_reboot out for a clean copy\n", in.Name)
	}
	id, err := acc.Imager.Image(ctx, in, name, reboot)
	if err != nil {
		return err
	}
	fmt.Fprintf(x.out, "%s: image %s (%s) is available; launch the pool from it with image \"%s\" and pool restart %s\n", in.Name, id, name, id, in.Pool)
	return nil
}
