package ssh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// procCommand reads what the metrics are computed from, in one session.
const procCommand = "cat /proc/loadavg /proc/stat /proc/meminfo"

// Metrics observes remote instances over SSH (runtime.Metrics), as the
// local provider does from this machine's /proc: cpu is the share of the
// machine's cores busy since the last observation of that instance
// (0..1; none at the first), load the 1-minute load average, memory the
// used share (1 - MemAvailable/MemTotal).
type Metrics struct {
	dialer *Dialer
	list   func(ctx context.Context, pool string) ([]runtime.Instance, error)
	target func(runtime.Instance) (Target, error)

	mu   sync.Mutex
	last map[string]map[string]cpuTimes // by pool, then instance ID: the last sample
}

// NewMetrics returns metrics read through d from the instances list gives,
// logged in to as target says.
func NewMetrics(d *Dialer, list func(ctx context.Context, pool string) ([]runtime.Instance, error), target func(runtime.Instance) (Target, error)) *Metrics {
	return &Metrics{dialer: d, list: list, target: target, last: map[string]map[string]cpuTimes{}}
}

// cpuTimes is the aggregate cpu line of /proc/stat, in clock ticks.
type cpuTimes struct{ busy, total uint64 }

// sample is what one instance shows.
type sample struct {
	cpu         cpuTimes
	load1       float64
	cores       int // the cpuN lines of /proc/stat
	memUsed     float64
	hasMemUsage bool
}

// readParallel bounds how many instances' /proc are read at once.
const readParallel = 32

// Observe reads every running instance of pool at once. Instances that
// cannot be reached are left out, and their errors returned joined.
func (m *Metrics) Observe(ctx context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	insts, err := m.list(ctx, pool)
	if err != nil {
		return fmt.Errorf("metrics for pool %s: %w", pool, err)
	}
	type read struct {
		inst runtime.Instance
		s    sample
		err  error
	}
	var running []runtime.Instance
	for _, in := range insts {
		if in.State == runtime.Running {
			running = append(running, in)
		}
	}
	reads := make([]read, len(running))
	sem := make(chan struct{}, readParallel)
	var wg sync.WaitGroup
	for i, in := range running {
		reads[i].inst = in
		wg.Add(1)
		go func() { // owned by Observe, which waits; bounded by ctx
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			reads[i].s, reads[i].err = m.read(ctx, in)
		}()
	}
	wg.Wait()

	m.mu.Lock()
	defer m.mu.Unlock()
	var cpu, load, mem []float64
	var errs []error
	last := m.last[pool]
	// Keep only what is listed now: instances gone from the pool are forgotten.
	next := map[string]cpuTimes{}
	for _, in := range insts {
		if t, ok := last[in.ID]; ok {
			next[in.ID] = t
		}
	}
	for _, r := range reads {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("metrics from %s: %w", r.inst.Name, r.err))
			continue
		}
		id := r.inst.ID
		name := r.inst.Name
		if prev, ok := next[id]; ok && r.s.cpu.total > prev.total && r.s.cpu.busy >= prev.busy {
			c := float64(r.s.cpu.busy-prev.busy) / float64(r.s.cpu.total-prev.total)
			cpu = append(cpu, c)
			obs.SetInstance(runtime.CPU, name, c)
		}
		next[id] = r.s.cpu                          // after a reboot the counters restart: the next delta starts here
		l := r.s.load1 / float64(max(r.s.cores, 1)) // per core, as §4 says
		load = append(load, l)
		obs.SetInstance(runtime.Load, name, l)
		if r.s.hasMemUsage {
			mem = append(mem, r.s.memUsed)
			obs.SetInstance(runtime.Memory, name, r.s.memUsed)
		}
	}
	m.last[pool] = next
	obs.SetValues(runtime.CPU, cpu)
	obs.SetValues(runtime.Load, load)
	obs.SetValues(runtime.Memory, mem)
	return errors.Join(errs...)
}

func (m *Metrics) read(ctx context.Context, in runtime.Instance) (sample, error) {
	t, err := m.target(in)
	if err != nil {
		return sample{}, err
	}
	var out, errOut bytes.Buffer
	if err := m.dialer.Run(ctx, t, procCommand, &out, &errOut); err != nil {
		return sample{}, fmt.Errorf("%s: %w: %s", procCommand, err, strings.TrimSpace(errOut.String()))
	}
	return parseProc(out.Bytes())
}

// parseProc reads /proc/loadavg, /proc/stat and /proc/meminfo one after
// the other.
func parseProc(b []byte) (sample, error) {
	var s sample
	var memTotal, memAvail float64
	var haveLoad, haveCPU bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case !haveLoad && len(f) == 5 && strings.Contains(f[3], "/"): // 0.52 0.58 0.59 1/123 4567
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return s, fmt.Errorf("/proc/loadavg: %q", sc.Text())
			}
			s.load1, haveLoad = v, true
		case len(f) > 4 && strings.HasPrefix(f[0], "cpu") && len(f[0]) > 3:
			s.cores++ // cpu0, cpu1, …: one line per core
		case len(f) > 4 && f[0] == "cpu":
			// user nice system idle iowait irq softirq steal [guest guest_nice]:
			// guest time is already counted in user and nice.
			var ticks [8]uint64
			for i := 1; i < len(f) && i <= len(ticks); i++ {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return s, fmt.Errorf("/proc/stat: %q", sc.Text())
				}
				ticks[i-1] = v
			}
			idle := ticks[3] + ticks[4]
			for _, v := range ticks {
				s.cpu.total += v
			}
			s.cpu.busy = s.cpu.total - idle
			haveCPU = true
		case len(f) >= 2 && f[0] == "MemTotal:":
			memTotal, _ = strconv.ParseFloat(f[1], 64)
		case len(f) >= 2 && f[0] == "MemAvailable:":
			memAvail, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	if !haveLoad || !haveCPU {
		return s, errors.New("no load average or cpu line in /proc: not a Linux machine?")
	}
	if memTotal > 0 && memAvail > 0 {
		s.memUsed, s.hasMemUsage = 1-memAvail/memTotal, true
	}
	return s, nil
}

var _ runtime.Metrics = (*Metrics)(nil)
