// Package metric holds two sources of a pool's declared metrics: a command
// whose output is the value (metric NAME command { run "…" }), and values
// pushed from outside (metric NAME push { … }, fed by `metric set`).
// Prometheus has a package of its own.
package metric

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/exec"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// CommandSettings are what `metric NAME command { … }` takes besides unit.
var CommandSettings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"run":     {Type: lang.String},
		"timeout": {Type: lang.Duration},
		"by":      {Words: []string{"name", "address"}},
	},
	Required: []string{"run"},
}

// DefaultTimeout bounds a metric command without a timeout: a check waits
// for it.
const DefaultTimeout = 5 * time.Second

// Command is a metric read by running a command at each check: its output
// is one number (a bare number in the unit's plain unit, or a literal with
// its unit: 42, 75%, 300ms), or, declared with `by name` or `by address`,
// a line `INSTANCE VALUE` for each instance.
type Command struct {
	cmd  runtime.Command
	typ  lang.Type
	by   string // "", name or address
	name string
}

// NewCommand reads a checked `metric NAME command { … }` declaration of a
// pool; the command runs from its policy file's directory.
func NewCommand(pool string, d *runtime.DeclaredMetric) (*Command, error) {
	c := &Command{typ: d.Type, name: d.Name, cmd: runtime.Command{Dir: filepath.Dir(d.Pos.Filename), Timeout: DefaultTimeout,
		Env: map[string]string{"CLOUDSPEAK_POOL": pool, "CLOUDSPEAK_METRIC": d.Name}}}
	for _, s := range d.Decl.Source.Settings {
		var err error
		switch s.Key.Name {
		case "run":
			c.cmd.Line, err = s.Str()
		case "timeout":
			c.cmd.Timeout, err = s.Duration()
		case "by":
			c.by = s.Word()
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Read runs the command and reads its output.
func (c *Command) Read(ctx context.Context, insts []runtime.Instance) (runtime.Sample, error) {
	out, err := exec.Runner{}.Capture(ctx, c.cmd)
	if err != nil {
		return runtime.Sample{}, err
	}
	if c.by == "" {
		v, err := lang.ParseReading(string(bytes.TrimSpace(out)), c.typ)
		if err != nil {
			return runtime.Sample{}, fmt.Errorf("output %q: %w", clip(out), err)
		}
		return runtime.Sample{Pool: v}, nil
	}
	values := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 2 {
			return runtime.Sample{}, fmt.Errorf("output line %d %q: want INSTANCE VALUE", line, sc.Text())
		}
		v, err := lang.ParseReading(f[1], c.typ)
		if err != nil {
			return runtime.Sample{}, fmt.Errorf("output line %d: %w", line, err)
		}
		values[f[0]] = v
	}
	var s runtime.Sample
	for _, in := range insts {
		if v, ok := values[instanceKey(in, c.by)]; ok {
			s.Instances = append(s.Instances, v)
		}
	}
	if len(s.Instances) == 0 && len(insts) > 0 {
		return s, fmt.Errorf("no line of its output names a running instance by %s", c.by)
	}
	return s, nil
}

// instanceKey is what names an instance in a source's output: its name,
// or its address (host only).
func instanceKey(in runtime.Instance, by string) string {
	if by == "name" {
		return in.Name
	}
	if h, _, err := net.SplitHostPort(in.Addr); err == nil {
		return h
	}
	return in.Addr
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// PushSettings are what `metric NAME push { … }` takes besides unit.
var PushSettings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"stale": {Type: lang.Duration},
	},
}

// DefaultStale is how long a pushed value lasts without stale.
const DefaultStale = 5 * time.Minute

// Pushes holds the values pushed to the policy's push metrics (`metric
// set`), and is the source of each. It outlives reloads: a reload keeps
// the last values of the metrics that are still declared.
type Pushes struct {
	mu     sync.Mutex
	values map[[2]string]pushed // by pool and metric
	clock  func() time.Time
}

type pushed struct {
	v  float64
	at time.Time
}

// NewPushes returns an empty store; now tells the time of a push.
func NewPushes(now func() time.Time) *Pushes {
	return &Pushes{values: map[[2]string]pushed{}, clock: now}
}

// Set records v for a pool's metric, now.
func (p *Pushes) Set(pool, name string, v float64) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.clock()
	p.values[[2]string{pool, name}] = pushed{v, at}
	return at
}

// Source returns the source of a pool's push metric, as declared.
func (p *Pushes) Source(pool string, d *runtime.DeclaredMetric) (runtime.MetricSource, error) {
	src := &pushSource{p: p, key: [2]string{pool, d.Name}, stale: DefaultStale}
	for _, s := range d.Decl.Source.Settings {
		if s.Key.Name == "stale" {
			var err error
			if src.stale, err = s.Duration(); err != nil {
				return nil, err
			}
		}
	}
	return src, nil
}

type pushSource struct {
	p     *Pushes
	key   [2]string
	stale time.Duration
}

// ErrStale says a pushed value is older than its metric's stale limit.
var ErrStale = errors.New("stale")

func (s *pushSource) Read(context.Context, []runtime.Instance) (runtime.Sample, error) {
	s.p.mu.Lock()
	v, ok := s.p.values[s.key]
	s.p.mu.Unlock()
	switch {
	case !ok:
		return runtime.Sample{}, fmt.Errorf("nothing pushed yet (cloudspeak metric set %s %s VALUE)", s.key[0], s.key[1])
	case s.p.clock().Sub(v.at) > s.stale:
		return runtime.Sample{}, fmt.Errorf("%w: nothing pushed within %v", ErrStale, s.stale)
	}
	return runtime.Sample{Pool: v.v, At: v.at}, nil
}
