package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/local"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// localSpec reads a pool's `provider local { … }` block.
func localSpec(d *lang.PoolDecl, b *lang.BlockDecl) (local.Spec, error) {
	var s local.Spec
	for _, it := range d.Items {
		if it.Port != nil {
			q, err := lang.Interpret(it.Port, lang.Number)
			if err != nil {
				return s, err
			}
			s.Port = int(q.Value)
		}
	}
	for _, set := range b.Settings {
		switch set.Key.Name {
		case "run", "dir", "grace":
			q, err := lang.Interpret(set.Args[0].Value, lang.Invalid)
			if err != nil {
				return s, err
			}
			switch set.Key.Name {
			case "run":
				s.Run = q.Str
			case "dir":
				s.Dir = q.Str
			default:
				s.Grace = time.Duration(q.Value * float64(time.Second))
			}
		case "env":
			s.Env = map[string]string{}
			for _, e := range set.Map.Entries {
				q, err := lang.Interpret(e.Value, lang.String)
				if err != nil {
					return s, err
				}
				s.Env[e.Key.Name] = q.Str
			}
		}
	}
	return s, nil
}

// providerBlock returns a pool's provider block.
func providerBlock(d *lang.PoolDecl) *lang.BlockDecl {
	for _, it := range d.Items {
		if it.Provider != nil {
			return it.Provider
		}
	}
	return nil
}

// wire gives each pool of prog its provider and metric source.
func (d *Daemon) wire(prog *runtime.Program) (runtime.Drivers, error) {
	drivers := runtime.Drivers{Providers: map[string]runtime.Provider{}}
	sources := metricsByPool{}
	for _, p := range prog.Pools {
		b := providerBlock(p.Decl)
		switch b.Kind.Name {
		case "local":
			spec, err := localSpec(p.Decl, b)
			if err != nil {
				return drivers, fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
			}
			d.local.SetSpec(p.Name, spec)
			drivers.Providers[p.Name] = d.local
			sources[p.Name] = d.local
		default:
			return drivers, fmt.Errorf("%s: pool %s: provider %s is not available in this release (local is)", b.Pos, p.Name, b.Kind.Name)
		}
	}
	drivers.Metrics = sources
	return drivers, nil
}

// metricsByPool sends each pool's observation to its provider's source.
type metricsByPool map[string]runtime.Metrics

func (m metricsByPool) Observe(ctx context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	if src := m[pool]; src != nil {
		return src.Observe(ctx, pool, now, obs)
	}
	return nil
}
