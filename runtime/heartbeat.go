package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// ErrGone is what a Prober's error matches (errors.Is) when the instance
// can never answer again: its process has exited, or the provider has
// terminated it. Such an instance is failed at once, without waiting for
// the timeout. Gone makes such an error.
var ErrGone = errors.New("gone for good")

// Gone marks err as saying the instance is gone for good; its message is
// err's.
func Gone(err error) error { return goneError{err} }

type goneError struct{ error }

func (g goneError) Is(target error) bool { return target == ErrGone }
func (g goneError) Unwrap() error        { return g.error }

// Failure detection. Each pool with a heartbeat is probed by its own loop,
// every interval, beside the pool's tick: a probe round runs the probes of
// all the pool's running instances at once, outside the engine's lock, and
// then judges them under it:
//
//   - an instance none of whose probes has succeeded for the timeout is
//     failed (at once if a probe says it is gone), and the pool's failure
//     handlers run in the same round, not at the next tick;
//   - a failed instance that is kept (no replace or promote handler) comes
//     back after Recover successes in a row; each time it fails again soon
//     after coming back (within flapWindow), the successes it needs double,
//     so an instance that flaps is not put back and taken out again and
//     again.
//
// An instance that fails within ten intervals of starting counts as a
// failed start; after maxFailedStarts in a row the pool waits before starting
// another (see reconcile), doubling the wait each time, so instances that
// cannot come up are not replaced in a tight loop.

// settleIntervals is how many heartbeat intervals (pool ticks without a
// heartbeat) an instance must have run for its failure not to count as a
// failed start.
const settleIntervals = 10

// settle is how long an instance must have run for its failure not to
// count as a failed start.
func (p *Pool) settle() time.Duration {
	if p.Heartbeat != nil {
		return settleIntervals * p.Heartbeat.Every
	}
	return settleIntervals * p.Tick
}

const (
	// maxFailedStarts is how many failed starts in a row a pool takes
	// before it backs off.
	maxFailedStarts = 3
	// firstBackoff and maxBackoff bound the wait before the next start.
	firstBackoff = 5 * time.Second
	maxBackoff   = 5 * time.Minute
	// keepProbes is how many probe results an instance keeps for the
	// decision log.
	keepProbes = 3
	// maxRelapses caps the doubling of the successes a flapping instance
	// needs: Recover × 2⁶.
	maxRelapses = 6
)

// flapWindow is how soon after recovering a failure counts as a relapse.
func (h *Heartbeat) flapWindow() time.Duration { return 10 * h.Timeout }

// probeState is what the heartbeat knows of one instance.
type probeState struct {
	lastOK    time.Time // its last successful probe, or when it was first probed
	okRun     int       // successes in a row
	results   []string  // the last keepProbes results, oldest first
	inflight  bool      // a probe of it is still running
	relapses  int       // failures soon after recovering
	recovered time.Time // when it last came back
	reason    string    // why the heartbeat failed it, for the decision log
	dead      bool      // a probe said it is gone for good
}

// need is how many successes in a row the instance needs to recover.
func (st *probeState) need(h *Heartbeat) int { return h.Recover << min(st.relapses, maxRelapses) }

func (st *probeState) record(at time.Time, err error) {
	r := at.Format("15:04:05.000") + " ok"
	if err != nil {
		r = at.Format("15:04:05.000") + " " + err.Error()
	}
	st.results = append(st.results, r)
	if len(st.results) > keepProbes {
		st.results = st.results[len(st.results)-keepProbes:]
	}
}

// watch runs the pool's heartbeat until ctx is done. Run owns it.
func (e *Engine) watch(ctx context.Context, ps *poolState) {
	every := ps.p.Heartbeat.Every
	for {
		t := e.opts.Clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		e.Beat(ctx, ps.p.Name)
	}
}

// Beat runs one heartbeat round of a pool: it probes the pool's running
// instances and acts on what it finds. Run calls it every heartbeat
// interval; tests call it directly.
func (e *Engine) Beat(ctx context.Context, pool string) {
	ps, prober, probes := e.toProbe(pool)
	if prober == nil {
		return
	}
	// Probe every instance at once, each bounded by the interval, so one
	// that hangs costs one interval, not one per instance.
	var wg sync.WaitGroup
	for _, pr := range probes {
		wg.Add(1)
		go func() { // owned by this round: it waits for all of them
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, ps.p.Heartbeat.Every)
			defer cancel()
			pr.err = prober.Probe(pctx, pr.inst)
		}()
	}
	wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	if ctx.Err() != nil || e.pools[ps.p.Index] != ps {
		for _, pr := range probes {
			pr.st.inflight = false
		}
		// Stopping, a probe cut short says nothing of the instance; or the
		// pool was dropped (led elsewhere) while it was probed.
		return
	}
	e.judge(ctx, ps, probes)
}

// probe is one probe of a heartbeat round.
type probe struct {
	inst Instance
	st   *probeState
	err  error
}

// toProbe returns the pool's prober and the instances to probe this round
// (the running ones, and the failed ones kept for recovery), marked in
// flight; a nil prober says the pool is not probed now.
func (e *Engine) toProbe(pool string) (*poolState, Prober, []*probe) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.prog.pools[pool]
	if p == nil || p.Heartbeat == nil {
		return nil, nil, nil
	}
	ps := e.pools[p.Index]
	prober := e.opts.Drivers.Probers[pool]
	if prober == nil || ps.stopped || ps.maintain || !ps.led {
		return nil, nil, nil
	}
	now := e.opts.Clock.Now()
	var probes []*probe
	for _, in := range ps.insts {
		kept := in.State == Failed && ps.kept[in.ID]
		if in.State != Running && !kept || in.Maintain {
			continue
		}
		st := ps.probes[in.ID]
		if st == nil {
			st = &probeState{lastOK: now} // the timeout runs from its first probe
			ps.probes[in.ID] = st
		}
		if st.inflight {
			continue // a hung probe is bounded by its own timeout
		}
		st.inflight = true
		probes = append(probes, &probe{inst: *in, st: st})
	}
	return ps, prober, probes
}

// judge records a round's probes: an instance that has not answered for the
// timeout (or is gone) fails, and the pool's failure handlers run at once;
// one kept for recovery comes back after enough successes. The caller holds
// e.mu.
func (e *Engine) judge(ctx context.Context, ps *poolState, probes []*probe) {
	now := e.opts.Clock.Now()
	h := ps.p.Heartbeat
	failed := false
	for _, pr := range probes {
		st := pr.st
		st.inflight = false
		in := ps.find(pr.inst.ID)
		if in == nil || ps.probes[in.ID] != st {
			continue // gone, or stopped, while it was probed
		}
		st.record(now, pr.err)
		if pr.err == nil {
			st.okRun++
			st.lastOK = now
			if in.State == Running && !st.recovered.IsZero() && now.Sub(st.recovered) >= h.flapWindow() {
				st.relapses, st.recovered = 0, time.Time{} // steady again
			}
		} else {
			st.okRun = 0
		}
		switch {
		case in.State == Running && (errors.Is(pr.err, ErrGone) || now.Sub(st.lastOK) >= h.Timeout):
			in.State = Failed
			ps.dirty = true
			st.dead = errors.Is(pr.err, ErrGone)
			if st.dead {
				st.reason = pr.err.Error()
			} else {
				st.reason = fmt.Sprintf("no probe has succeeded for %v", now.Sub(st.lastOK).Round(time.Millisecond))
			}
			if !st.recovered.IsZero() && now.Sub(st.recovered) < h.flapWindow() {
				st.relapses++
			}
			failed = true
		case in.State == Failed && ps.kept[in.ID] && st.okRun >= st.need(h):
			in.State = Running
			delete(ps.kept, in.ID)
			delete(ps.handled, in.ID)
			st.recovered, st.reason = now, ""
			e.log(ps.decide(now, decision.Recovered).Probing(st.results).
				Sayf("%s recovered after %d successful probes in a row: back in rotation", in.Name, st.okRun))
			// Bounded as a tick's calls are: the watch's own context has
			// no deadline, and balance may attach a volume or move a record.
			cctx, cancel := e.call(ctx)
			e.balance(cctx, ps, now)
			cancel()
		}
	}
	if failed {
		cctx, cancel := e.call(ctx)
		defer cancel()
		e.failures(cctx, ps, now)
		e.reconcile(cctx, ps, now)
		e.save(now)
	}
}

// find returns the pool's instance with that ID, or nil.
func (ps *poolState) find(id string) *Instance {
	for _, in := range ps.insts {
		if in.ID == id {
			return in
		}
	}
	return nil
}

// failureReason says why an instance failed, and the probe results that
// led to it; dead says it cannot recover (the provider found it failed or
// gone, or a probe found it gone), as opposed to not answering.
func (ps *poolState) failureReason(in *Instance) (why string, probes []string, dead bool) {
	if ps.gone[in.ID] {
		return "the provider no longer lists it", nil, true
	}
	st := ps.probes[in.ID]
	if st != nil && st.reason != "" {
		return st.reason, st.results, st.dead
	}
	if st != nil {
		probes = st.results // the provider was first; these are what the heartbeat last saw
	}
	if in.Reason != "" {
		return "the provider reports it failed: " + in.Reason, probes, true
	}
	return "the provider reports it failed", probes, true
}

// failedStart counts a failure of an instance younger than settle as a
// failed start, and backs the pool's starts off after maxFailedStarts of
// them in a row.
func (e *Engine) failedStart(ps *poolState, now time.Time, in *Instance, why string) {
	if !in.Started.IsZero() && now.Sub(in.Started) >= ps.p.settle() {
		return
	}
	ps.failedStarts++
	ps.lastFailedStart = now
	if ps.failedStarts < maxFailedStarts {
		return
	}
	wait := firstBackoff << min(ps.failedStarts-maxFailedStarts, 10)
	wait = min(wait, maxBackoff)
	ps.startAfter = now.Add(wait)
	e.log(ps.decide(now, decision.Backoff).Sayf("%d instances in a row failed within %v of starting (last: %s, %s): no new instance until %s", ps.failedStarts, ps.p.settle(), in.Name, why, ps.startAfter.Format("15:04:05")))
}

// settled resets the failed-start count once an instance started since the
// last failed start has run for the pool's settle time.
func (ps *poolState) settled(now time.Time) {
	if ps.failedStarts == 0 {
		return
	}
	for _, in := range ps.insts {
		if in.State == Running && in.Started.After(ps.lastFailedStart) && now.Sub(in.Started) >= ps.p.settle() {
			ps.failedStarts, ps.startAfter = 0, time.Time{}
			return
		}
	}
}

// probeSummary is the probe results an instance's status shows.
func (ps *poolState) probeSummary(id string) string {
	st := ps.probes[id]
	if st == nil || len(st.results) == 0 {
		return ""
	}
	return strings.Join(st.results, "; ")
}
