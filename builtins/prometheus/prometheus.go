// Package prometheus reads a pool's declared metric from a Prometheus
// server: `metric NAME prometheus { url "…"; query "…"; [by "LABEL"] }`
// runs the PromQL query as an instant query at each check, through the
// server's HTTP API.
package prometheus

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// Settings are what `metric NAME prometheus { … }` takes besides unit.
var Settings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"url":     {Check: checkURL},
		"query":   {Type: lang.String},
		"by":      {Type: lang.String},
		"timeout": {Type: lang.Duration},
	},
	Required: []string{"url", "query"},
}

func checkURL(c *lang.Checker, s *lang.Setting) {
	v, err := s.Str()
	if err != nil || len(s.Args) != 1 || s.Args[0].Value == nil {
		c.Errorf(s.Key, `write url "http://127.0.0.1:9090"`, "url takes one string")
		return
	}
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		c.Errorf(s.Args[0].Value, `write the server's base URL, e.g. "http://127.0.0.1:9090"`, "url %q is not an http:// or https:// URL", v)
	}
}

// DefaultTimeout bounds a query without a timeout.
const DefaultTimeout = 5 * time.Second

// Source is one declared Prometheus metric.
type Source struct {
	api     v1.API
	url     string
	query   string
	by      string // a label naming the instance; "" for one number
	timeout time.Duration
}

// New reads a checked declaration.
func New(d *runtime.DeclaredMetric) (*Source, error) {
	s := &Source{timeout: DefaultTimeout}
	for _, set := range d.Decl.Source.Settings {
		var err error
		switch set.Key.Name {
		case "url":
			s.url, err = set.Str()
		case "query":
			s.query, err = set.Str()
		case "by":
			s.by, err = set.Str()
		case "timeout":
			s.timeout, err = set.Duration()
		}
		if err != nil {
			return nil, err
		}
	}
	client, err := api.NewClient(api.Config{Address: s.url, Client: &http.Client{Timeout: s.timeout}})
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", s.url, err)
	}
	s.api = v1.NewAPI(client)
	return s, nil
}

// Read runs the query now. Its values are in Prometheus' own convention
// of base units: seconds, per second, and ratios for a percentage (0.75
// is 75%).
func (s *Source) Read(ctx context.Context, insts []runtime.Instance) (runtime.Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	val, _, _, err := s.api.Query(ctx, s.query, time.Now(), v1.WithTimeout(s.timeout))
	if err != nil {
		return runtime.Sample{}, fmt.Errorf("query %s: %w", s.url, err)
	}
	var samples model.Vector
	switch v := val.(type) {
	case *model.Scalar:
		if s.by != "" {
			return runtime.Sample{}, fmt.Errorf("the query gave a scalar, and by %q wants a series per instance", s.by)
		}
		return s.one(float64(v.Value))
	case model.Vector:
		samples = v
	default:
		return runtime.Sample{}, fmt.Errorf("the query gave a %s; want an instant vector or a scalar", val.Type())
	}
	if s.by == "" {
		switch len(samples) {
		case 0:
			return runtime.Sample{}, fmt.Errorf("the query gave no series")
		case 1:
			return s.one(float64(samples[0].Value))
		}
		return runtime.Sample{}, fmt.Errorf("the query gave %d series; aggregate them (sum, avg) or declare by \"LABEL\" for one per instance", len(samples))
	}
	byLabel := map[string]float64{}
	for _, smp := range samples {
		if l, ok := smp.Metric[model.LabelName(s.by)]; ok {
			byLabel[string(l)] = float64(smp.Value)
		}
	}
	var out runtime.Sample
	for _, in := range insts {
		if v, ok := match(byLabel, in); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			out.Instances = append(out.Instances, v)
		}
	}
	if len(out.Instances) == 0 && len(insts) > 0 {
		return out, fmt.Errorf("no series' %s label names a running instance (by name, id or address)", s.by)
	}
	return out, nil
}

func (s *Source) one(v float64) (runtime.Sample, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return runtime.Sample{}, fmt.Errorf("the query gave %v", v)
	}
	return runtime.Sample{Pool: v}, nil
}

// match finds an instance's value by its name, its ID, its address
// (host:port, as Prometheus' instance label has it) or its host.
func match(byLabel map[string]float64, in runtime.Instance) (float64, bool) {
	keys := []string{in.Name, in.ID, in.Addr}
	if h, _, err := net.SplitHostPort(in.Addr); err == nil {
		keys = append(keys, h)
	}
	for _, k := range keys {
		if v, ok := byLabel[k]; ok && k != "" {
			return v, true
		}
	}
	return 0, false
}
