package s3

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// NewProgress reports a sync to w: on a terminal, a bar of bytes and
// files that redraws itself; otherwise (a pipe, a log) one plain line per
// change, which scripts and logs keep.
func NewProgress(w io.Writer, terminal bool) Progress {
	if terminal {
		return &barProgress{w: w}
	}
	return &lineProgress{w: w}
}

// lineProgress writes "copy KEY (SIZE)", "delete KEY" or
// "failed KEY: ERROR" as each change ends.
type lineProgress struct {
	mu sync.Mutex
	w  io.Writer
}

func (*lineProgress) Start(int, int64) {}
func (*lineProgress) Moved(int64)      {}
func (*lineProgress) End()             {}

func (l *lineProgress) Done(op Op, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		fmt.Fprintf(l.w, "failed %s %s: %v\n", op.Kind, op.Key, err)
	case op.Kind == Copy:
		fmt.Fprintf(l.w, "copy %s (%s, %s)\n", op.Key, Bytes(op.Size), op.Reason)
	default:
		fmt.Fprintf(l.w, "delete %s (%s)\n", op.Key, op.Reason)
	}
}

// barProgress draws progressbar's bar. Failures are not drawn: the sync's
// error lists them when it ends.
type barProgress struct {
	w       io.Writer
	mu      sync.Mutex
	bar     *progressbar.ProgressBar
	changes int
	done    int
}

func (b *barProgress) Start(changes int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if changes == 0 {
		return
	}
	b.changes = changes
	b.bar = progressbar.NewOptions64(bytes,
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetDescription(fmt.Sprintf("sync 0/%d", changes)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
}

func (b *barProgress) Moved(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.Add64(n)
	}
}

func (b *barProgress) Done(op Op, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar == nil {
		return
	}
	b.done++
	b.bar.Describe(fmt.Sprintf("sync %d/%d", b.done, b.changes))
}

// End leaves the bar where it stopped, and the cursor on the next line,
// for the summary or the errors.
func (b *barProgress) End() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar == nil {
		return
	}
	if b.done == b.changes {
		b.bar.Finish()
	}
	fmt.Fprintln(b.w)
	b.bar = nil
}
