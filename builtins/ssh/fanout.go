package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fatih/color"
)

// DefaultParallel is how many hosts a Fanout reaches at once by default.
const DefaultParallel = 32

// NamedTarget is a target with the name its output lines are prefixed by
// (an instance's name).
type NamedTarget struct {
	Name   string
	Target Target
}

// Result is how a command ended on one target.
type Result struct {
	Name       string
	ExitStatus int   // -1 when it did not run to an end (see Err)
	Err        error // nil, an *ExitError, or why it could not run
	Duration   time.Duration
}

// Fanout runs command on every target, at most parallel at once (0:
// DefaultParallel), each output line written to out as it comes, prefixed
// by its target's name. It returns one Result per target, in their order.
func (d *Dialer) Fanout(ctx context.Context, targets []NamedTarget, command string, parallel int, out *LineWriter) []Result {
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	width := 0
	for _, t := range targets {
		width = max(width, len(t.Name))
	}
	results := make([]Result, len(targets))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		results[i] = Result{Name: t.Name, ExitStatus: -1}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			results[i].Err = fmt.Errorf("not started: %w", context.Cause(ctx))
			continue
		}
		wg.Add(1)
		go func() { // owned by Fanout, which waits for it
			defer wg.Done()
			defer func() { <-sem }()
			if d.onFanout != nil {
				d.onFanout(1)
				defer d.onFanout(-1)
			}
			prefix := out.prefix(t.Name, width, i)
			stdout, stderr := out.lines(prefix), out.lines(prefix)
			start := time.Now()
			err := d.Run(ctx, t.Target, command, stdout, stderr)
			stdout.Close()
			stderr.Close()
			results[i].Duration = time.Since(start)
			results[i].Err = err
			if status, ok := ExitStatus(err); ok {
				results[i].ExitStatus = status
			}
		}()
	}
	wg.Wait()
	return results
}

// Failed counts the results that did not exit 0.
func Failed(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Err != nil {
			n++
		}
	}
	return n
}

// Summary says how a fanout went in one line: "20 of 20 ok", or
// "2 of 20 failed: node3 exit 1; node7 connect …".
func Summary(results []Result) string {
	failed := Failed(results)
	if failed == 0 {
		return fmt.Sprintf("%d of %d ok", len(results), len(results))
	}
	var parts []string
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		var ee *ExitError
		switch {
		case errors.As(r.Err, &ee) && ee.Signal != "":
			parts = append(parts, r.Name+" killed by signal "+ee.Signal)
		case errors.As(r.Err, &ee):
			parts = append(parts, fmt.Sprintf("%s exit %d", r.Name, ee.Status))
		default:
			parts = append(parts, r.Name+" "+r.Err.Error())
		}
	}
	return fmt.Sprintf("%d of %d failed: %s", failed, len(results), strings.Join(parts, "; "))
}

// LineWriter writes whole lines from many hosts to one writer, each line
// prefixed by its host's name, so that lines never mix mid-line.
type LineWriter struct {
	W     io.Writer
	Color bool // color the prefixes: set it when W is a terminal

	mu sync.Mutex
}

// palette colors the hosts' prefixes in turn.
var palette = []color.Attribute{color.FgCyan, color.FgGreen, color.FgYellow, color.FgBlue, color.FgMagenta, color.FgRed}

func (lw *LineWriter) prefix(name string, width, i int) string {
	p := fmt.Sprintf("%-*s | ", width, name)
	if lw != nil && lw.Color {
		c := color.New(palette[i%len(palette)])
		c.EnableColor() // the caller decided; fatih/color would look at os.Stdout
		p = c.Sprint(p)
	}
	return p
}

// lines returns a writer that passes complete lines to lw with prefix,
// keeping a partial line until it ends or the writer is closed.
func (lw *LineWriter) lines(prefix string) *lineBuffer {
	return &lineBuffer{lw: lw, prefix: prefix}
}

func (lw *LineWriter) writeLine(prefix string, line []byte) {
	if lw == nil || lw.W == nil {
		return
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	buf := make([]byte, 0, len(prefix)+len(line)+1)
	buf = append(append(append(buf, prefix...), line...), '\n')
	lw.W.Write(buf)
}

// maxLine is the longest line kept whole; a longer one is cut.
const maxLine = 64 << 10

type lineBuffer struct {
	lw     *LineWriter
	prefix string
	buf    []byte
}

// Write is called by one goroutine at a time (x/crypto's copier).
func (b *lineBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	for {
		i := bytes.IndexByte(b.buf, '\n')
		if i < 0 {
			break
		}
		b.lw.writeLine(b.prefix, bytes.TrimSuffix(b.buf[:i], []byte("\r")))
		b.buf = b.buf[i+1:]
	}
	if len(b.buf) >= maxLine { // no newline in sight: do not hold it all
		b.Close()
	}
	return len(p), nil
}

// Close writes what is left of a last line without a newline.
func (b *lineBuffer) Close() error {
	if len(b.buf) > 0 {
		b.lw.writeLine(b.prefix, b.buf)
		b.buf = nil
	}
	return nil
}
