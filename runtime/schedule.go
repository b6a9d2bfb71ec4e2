package runtime

import (
	"context"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// nextRun returns when a job runs next after now, given its last run.
func (j *Job) nextRun(now, last time.Time) time.Time {
	if j.Every > 0 {
		if last.IsZero() {
			return now.Add(j.Every)
		}
		return last.Add(j.Every)
	}
	return j.At.next(now)
}

// next returns the first occurrence of the schedule strictly after t, in
// the schedule's time zone. Days are walked by calendar date, so a day of 23
// or 25 hours (a daylight-saving change) has exactly one occurrence: a time
// that comes twice (the clock set back) runs the first time, and a time that
// never comes (the clock set forward over it) runs at the moment of the
// change, as cron does.
func (s *Schedule) next(t time.Time) time.Time {
	lt := t.In(s.Loc)
	y, m, d := lt.Date()
	for i := 0; i < 8; i++ {
		day := time.Date(y, m, d+i, 12, 0, 0, 0, s.Loc) // noon: never in a DST gap
		if !s.Days[day.Weekday()] {
			continue
		}
		at := s.on(day)
		if at.After(t) {
			return at
		}
	}
	return time.Time{} // no day selected: never
}

// on returns the schedule's instant on the calendar day of day.
func (s *Schedule) on(day time.Time) time.Time {
	at := time.Date(day.Year(), day.Month(), day.Day(), s.Hour, s.Minute, 0, 0, s.Loc)
	if lt := at.In(s.Loc); lt.Hour() == s.Hour && lt.Minute() == s.Minute {
		return at
	}
	// HH:MM falls in a gap. Find the first instant whose wall clock on that
	// day is past it: the change itself.
	want := s.Hour*60 + s.Minute
	lo, hi := at.Add(-3*time.Hour), at.Add(3*time.Hour)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		lt := mid.In(s.Loc)
		if lt.Day() == day.Day() && lt.Hour()*60+lt.Minute() >= want || lt.Day() != day.Day() && mid.After(at) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi.Truncate(time.Second)
}

func (j *Job) poolName() string {
	if j.Pool == nil {
		return ""
	}
	return j.Pool.Name
}

// runJobs runs the every and at jobs due at now; the caller holds e.mu. A
// job whose last run is still going skips this one, and the log says so.
func (e *Engine) runJobs(ctx context.Context, now time.Time) {
	for _, j := range e.prog.Jobs {
		js := e.jobs[j]
		if !e.led[e.jobUnit(j)] || js.next.IsZero() || js.next.After(now) {
			continue
		}
		due := js.next
		js.next = j.nextRun(now, due)
		if js.running {
			e.log(decision.New(now, j.poolName(), decision.Suppressed, e.target(j.Pool)).By(j.Text, j.Pos).
				Says("previous run still going: skipped"))
			continue
		}
		e.act(ctx, now, j.Pool, j.Action, j.Text, j.Pos, nil, func(d decision.Decision) { js.running, js.last = false, d }, func() { js.running = true })
	}
}

// NextDue returns when the engine next has work.
func (e *Engine) NextDue() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if e.opts.Leader != nil {
		// Leadership comes and goes between steps: look again soon.
		consider(e.opts.Clock.Now().Add(followEvery))
	}
	for _, ps := range e.pools {
		if ps.led {
			consider(ps.nextTick)
		}
	}
	for j, js := range e.jobs {
		if e.led[e.jobUnit(j)] {
			consider(js.next)
		}
	}
	return next
}
