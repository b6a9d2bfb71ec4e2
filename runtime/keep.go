package runtime

import (
	"fmt"
	"math"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// Target tracking (spec §8, "Target tracking"). Each `keep` rule
// recommends a size at every tick from its metric, HPA's way:
//
//	desired = ceil(reporting instances × value / target)
//	desired = ceil(total / target)                        (per instance)
//
// Only instances that report the metric carry load; the pool's capacity is
// its target, which counts instances still starting: they take their share
// with no load yet, so a metric that lags their start cannot stack
// scale-ups. Within the tolerance band the size stays. A rise is followed at
// once (or to the lowest recommendation of the `up after` window); a fall
// only to the highest recommendation of the `down after` window. The
// pool's size is the largest of its keep rules' sizes; it scales in only
// when every keep rule has data and wants it smaller, and no scale-out
// `when` rule is pending.

// keepState is a keep rule's memory: its recommendations over its windows,
// and what it saw and wanted at the last tick (for explain).
type keepState struct {
	recs   []Recommendation
	value  float64 // the metric, aggregated
	load   float64 // instance-equivalents of work: value × reporting / target
	n      int     // instances reporting it
	ok     bool    // the metric had data
	inBand bool    // the size stays: the load is within the tolerance of it
	want   int     // the raw recommendation
	wish   int     // after the tolerance band and the windows
	won    bool    // its wish is the pool's
	said   string  // the suppression last logged, to log each spell once
	heldAt bool    // the last tick had no data: logged once
}

// Recommendation is a size a keep rule recommended at a time.
type Recommendation struct {
	T time.Time `json:"t"`
	N int       `json:"n"`
}

// track runs the pool's keep rules after its when rules; outPending says
// a scale-out when rule is pending, which forbids a scale-in.
func (e *Engine) track(ps *poolState, now time.Time, outPending bool) {
	if len(ps.p.Keeps) == 0 {
		return
	}
	cur := ps.target
	var best *Keep
	allData := true
	for _, k := range ps.p.Keeps {
		ks := e.keeps[k]
		ks.won = false
		if !e.recommend(ps, k, ks, cur, now) {
			allData = false
			continue
		}
		if best == nil || ks.wish > e.keeps[best].wish {
			best = k
		}
	}
	if best == nil {
		return
	}
	bs := e.keeps[best]
	bs.won = true
	want := bs.wish
	if ps.clamp(want) == cur {
		if want != cur {
			e.keepSuppress(ps, best, now, fmt.Sprintf("wants %d: the pool is at its %s %d", want, map[bool]string{true: "max", false: "min"}[want > cur], cur))
		} else {
			bs.said = ""
		}
		return
	}
	if want < cur {
		switch {
		case !allData:
			e.keepSuppress(ps, best, now, "a keep rule has no data: no scale-in on a missing metric")
			return
		case outPending:
			e.keepSuppress(ps, best, now, "a scale-out rule is pending")
			return
		}
	}
	bs.said = ""
	action := decision.Add
	if want < cur {
		action = decision.Remove
	}
	outcome := ps.setTarget(want)
	e.log(ps.decide(now, action).By(best.Text, best.Pos).Seeing(e.keepReadings(best)).Says(outcome + ": " + e.keepWhy(best, cur)))
}

// recommend computes a keep rule's wish for a pool of cur; false when its
// metric has no data (the rule holds the size: it can never scale in).
func (e *Engine) recommend(ps *poolState, k *Keep, ks *keepState, cur int, now time.Time) bool {
	v := e.obs[k.ref.pool].At(k.ref.metric)
	// An instance's value needs an instance to report it; a total does not
	// (no instance ready yet is a pool carrying all its load).
	ks.ok = v.OK && (k.PerInstance || v.N > 0)
	if !ks.ok {
		if !ks.heldAt {
			ks.heldAt = true
			e.log(ps.decide(now, decision.Held).By(k.Text, k.Pos).Says("no data for " + k.ref.name + ": the size holds"))
		}
		return false
	}
	ks.heldAt = false
	ks.value, ks.n = v.Of(k.ref.agg), v.N
	if k.PerInstance {
		ks.load = ks.value / k.Target
	} else {
		ks.load = float64(v.N) * ks.value / k.Target
	}
	ks.want = int(math.Ceil(ks.load - 1e-9))
	ks.inBand = cur > 0 && ks.want != cur && math.Abs(ks.load/float64(cur)-1) <= k.Tolerance
	if ks.inBand {
		ks.want = cur
	}
	window := max(k.Up, k.Down)
	ks.recs = append(ks.recs, Recommendation{now, ks.want})
	for len(ks.recs) > 1 && now.Sub(ks.recs[0].T) > window {
		ks.recs = ks.recs[1:]
	}
	ks.wish = ks.want
	switch {
	case ks.want > cur: // up to the lowest of the up window, but not down
		for _, r := range ks.recs {
			if now.Sub(r.T) <= k.Up {
				ks.wish = min(ks.wish, r.N)
			}
		}
		ks.wish = max(ks.wish, cur)
	case ks.want < cur: // down to the highest of the down window, but not up
		for _, r := range ks.recs {
			if now.Sub(r.T) <= k.Down {
				ks.wish = max(ks.wish, r.N)
			}
		}
		ks.wish = min(ks.wish, cur)
	}
	return true
}

// keepSuppress logs, once per spell, why the winning keep rule cannot act.
func (e *Engine) keepSuppress(ps *poolState, k *Keep, now time.Time, why string) {
	ks := e.keeps[k]
	if ks.said != why {
		ks.said = why
		e.log(ps.decide(now, decision.Suppressed).By(k.Text, k.Pos).Seeing(e.keepReadings(k)).Says(why))
	}
}

func (e *Engine) keepReadings(k *Keep) []decision.Reading {
	ks := e.keeps[k]
	if !ks.ok {
		return nil
	}
	return []decision.Reading{{Name: k.ref.name, Value: ks.value, Type: k.Type}}
}

// keepWhy says how a keep rule came to its wish: the formula with its
// numbers, and the window that held it back.
func (e *Engine) keepWhy(k *Keep, cur int) string {
	ks := e.keeps[k]
	q := func(v float64) string { return decision.Format(v, k.Type) }
	var s string
	switch {
	case !ks.ok:
		return "no data"
	case ks.inBand:
		s = fmt.Sprintf("%.2f instances' worth of load is within %s of %d", ks.load, fmtPercent(k.Tolerance), cur)
	case k.PerInstance:
		s = fmt.Sprintf("desired ceil(%s / %s) = %d", q(ks.value), q(k.Target), ks.want)
	default:
		s = fmt.Sprintf("desired ceil(%d × %s / %s) = %d", ks.n, q(ks.value), q(k.Target), ks.want)
	}
	switch {
	case ks.wish > ks.want:
		s += fmt.Sprintf("; held at %d, the highest of the last %s", ks.wish, k.Down)
	case ks.wish < ks.want:
		s += fmt.Sprintf("; held at %d, the lowest of the last %s", ks.wish, k.Up)
	}
	return s
}

func fmtPercent(f float64) string { return decision.Format(f, lang.Percent) }
