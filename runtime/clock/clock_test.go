package clock

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func TestVirtualFiresInOrder(t *testing.T) {
	v := NewVirtual(t0)
	late := v.NewTimer(3 * time.Second)
	early := v.NewTimer(time.Second)
	stopped := v.NewTimer(2 * time.Second)
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	v.Advance(1500 * time.Millisecond)
	select {
	case at := <-early.C():
		if !at.Equal(t0.Add(time.Second)) {
			t.Fatalf("early fired with %v", at)
		}
	default:
		t.Fatal("early timer did not fire")
	}
	select {
	case <-late.C():
		t.Fatal("late timer fired early")
	default:
	}
	if got := v.Now(); !got.Equal(t0.Add(1500 * time.Millisecond)) {
		t.Fatalf("Now = %v", got)
	}
	if next, ok := v.Next(); !ok || !next.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("Next = %v %v", next, ok)
	}
	v.Advance(10 * time.Second)
	if at := <-late.C(); !at.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("late fired with %v", at)
	}
	select {
	case <-stopped.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	if late.Stop() {
		t.Fatal("Stop of a fired timer reported true")
	}
}

func TestVirtualNeverGoesBack(t *testing.T) {
	v := NewVirtual(t0)
	v.Set(t0.Add(-time.Hour))
	if !v.Now().Equal(t0) {
		t.Fatalf("clock went back to %v", v.Now())
	}
	if tm := v.NewTimer(0); len(tm.C()) != 1 {
		t.Fatal("a zero timer must fire at once")
	}
}

func TestReal(t *testing.T) {
	var c Clock = Real{}
	tm := c.NewTimer(time.Millisecond)
	if at := <-tm.C(); at.IsZero() || c.Now().Before(at) {
		t.Fatalf("real timer fired at %v", at)
	}
}
