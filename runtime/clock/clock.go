// Package clock is the only way the runtime learns the time or waits. The
// daemon uses Real; tests and `cloudspeak simulate` use a Virtual clock that
// moves only when told to, so a week of scheduling runs in a second and
// every decision can be replayed exactly.
//
// It knows nothing of what is scheduled.
package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on C once d has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer, like time.Timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Virtual is a clock that stands still until Advance or Set moves it. Timers
// fire, in order of their deadlines, as the clock passes them. It is safe
// for concurrent use.
type Virtual struct {
	mu     sync.Mutex
	now    time.Time
	timers timerHeap
	seq    int
}

// NewVirtual returns a virtual clock showing start.
func NewVirtual(start time.Time) *Virtual { return &Virtual{now: start} }

func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

func (v *Virtual) NewTimer(d time.Duration) Timer {
	v.mu.Lock()
	defer v.mu.Unlock()
	t := &virtualTimer{clock: v, c: make(chan time.Time, 1), when: v.now.Add(d), seq: v.seq}
	v.seq++
	if d <= 0 {
		t.c <- v.now
		t.fired = true
		return t
	}
	heap.Push(&v.timers, t)
	return t
}

// Advance moves the clock forward by d, firing the timers it passes.
func (v *Virtual) Advance(d time.Duration) { v.Set(v.Now().Add(d)) }

// Set moves the clock to t (never backwards), firing the timers it passes,
// each with its own deadline as the time sent.
func (v *Virtual) Set(t time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.timers) > 0 && !v.timers[0].when.After(t) {
		next := heap.Pop(&v.timers).(*virtualTimer)
		v.now = next.when
		next.fired = true
		next.c <- next.when
	}
	if t.After(v.now) {
		v.now = t
	}
}

// Next returns the deadline of the earliest pending timer.
func (v *Virtual) Next() (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.timers) == 0 {
		return time.Time{}, false
	}
	return v.timers[0].when, true
}

type virtualTimer struct {
	clock *Virtual
	c     chan time.Time
	when  time.Time
	seq   int // breaks ties: timers set first fire first
	index int // in the heap; -1 once removed
	fired bool
}

func (t *virtualTimer) C() <-chan time.Time { return t.c }

func (t *virtualTimer) Stop() bool {
	v := t.clock
	v.mu.Lock()
	defer v.mu.Unlock()
	if t.fired || t.index < 0 {
		return false
	}
	heap.Remove(&v.timers, t.index)
	return true
}

type timerHeap []*virtualTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when.Equal(h[j].when) {
		return h[i].seq < h[j].seq
	}
	return h[i].when.Before(h[j].when)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*virtualTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
