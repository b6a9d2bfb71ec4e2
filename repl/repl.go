// Package repl is CloudSpeak's interactive shell: statements of the
// language typed at a prompt and run by the daemon on the state directory,
// with history, completion of keywords, verbs, pools and instances, and
// multi-line input while a `{` is open.
//
// With a daemon running on the state directory, the REPL is one of its
// clients, as the one-liners are. With none, it runs one in its own
// process, so that a pool declared at the prompt is scheduled at once; that
// daemon, and its pools' instances, stop when the REPL ends.
//
// It knows the language's syntax (for completion and continuation lines) and
// the control protocol, not what the statements do: a daemon runs them.
package repl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chzyer/readline"
	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/builtins/daemon"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/mattn/go-isatty"
)

// Options configure a session.
type Options struct {
	StateDir string
	// HistoryFile keeps the statements entered, across sessions; "" means
	// StateDir/history. It is created with mode 0600.
	HistoryFile string
	Stdin       io.ReadCloser
	Stdout      io.Writer
	Stderr      io.Writer
	// Color turns on colored output and diagnostics (the caller decides:
	// a terminal, NO_COLOR unset).
	Color bool
	// Client runs the statements. nil: the daemon running on StateDir, or,
	// with none, one this session starts and stops.
	Client control.Client
}

const (
	prompt     = "cloudspeak> "
	contPrompt = "        ... "
	// stopTimeout bounds how long leaving waits for the session's own
	// daemon to stop its instances (each has its grace period).
	stopTimeout = time.Minute
)

// Run runs a session until Ctrl-D, `exit` or `quit`, the end of input, or
// ctx's end. Statements that fail do not end it.
func Run(ctx context.Context, o Options) error {
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.HistoryFile == "" {
		o.HistoryFile = filepath.Join(o.StateDir, "history")
	}
	s := &session{o: o, out: o.Stdout, errw: o.Stderr, id: fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())}
	// Ctrl-C is the session's for as long as it runs: at the prompt
	// readline reads it as a key, while a statement runs it stops the
	// statement, and from a pipe it ends the session. It never kills the
	// process with the session's daemon in it, which would leave its
	// instances running (for the next daemon to adopt, but running).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	s.interactive = terminal(o.Stdin)
	go func() { // owned by Run: ends with its ctx
		for {
			select {
			case <-ctx.Done():
				return
			case <-sigs:
				s.interrupt(!s.interactive, cancel)
			}
		}
	}()
	if s.interactive {
		return s.edit(ctx)
	}
	return s.plain(ctx)
}

// interrupt stops the statement running, and, if ending, the session.
func (s *session) interrupt(ending bool, cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopStatement != nil {
		s.stopStatement()
	}
	if ending {
		s.interrupted = true
		cancel()
	}
}

// terminal reports whether r is a terminal: the REPL edits lines only
// there, and reads statements plainly from a pipe or file.
func terminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

type session struct {
	o         Options
	out, errw io.Writer
	client    control.Client
	own       *daemon.Daemon // the daemon this session runs, if any
	line      int            // lines read: a statement's diagnostics count from its first
	cwd       string
	failed    int    // the highest status of a statement that failed
	id        string // the session's, for the daemon (Request.Session)
	// interactive: a terminal, where lines are edited; else statements
	// are read plainly from a pipe or a file.
	interactive bool

	mu            sync.Mutex
	stopStatement context.CancelFunc // cancels the statement running, if any
	interrupted   bool               // Ctrl-C ended a plain session
}

// FailedError is what Run returns when it read statements from a pipe or
// a file and some failed: Status is the exit status a one-liner would
// have had, 1 for a failed action, 2 for bad usage or policy errors. At a
// terminal, failures are only printed.
type FailedError struct{ Status int }

// result is a plain session's outcome: a FailedError if any statement
// failed, or if the session was cut short.
func (s *session) result() error {
	s.mu.Lock()
	cut := s.interrupted
	s.mu.Unlock()
	if cut {
		fmt.Fprintln(s.errw, "(interrupted: the statements after it were not run)")
		return &FailedError{Status: max(s.failed, 1)}
	}
	if s.failed != 0 {
		return &FailedError{Status: s.failed}
	}
	return nil
}

func (e *FailedError) Error() string { return fmt.Sprintf("statements failed (status %d)", e.Status) }

// connect finds the daemon on the state directory, or starts one whose
// log goes to logw.
func (s *session) connect(logw io.Writer) error {
	s.cwd, _ = os.Getwd()
	if s.o.Client != nil {
		s.client = s.o.Client
		return nil
	}
	c, err := control.Dial(s.o.StateDir)
	if err == nil {
		s.client = c
		fmt.Fprintf(s.errw, "(connected to the daemon running on %s)\n", s.o.StateDir)
		return nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		return err
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{ReplaceAttr: shortTime}))
	d, err := daemon.Start(daemon.Config{StateDir: s.o.StateDir, Log: log})
	if err != nil {
		return fmt.Errorf("no daemon runs on %s, and this session could not start one: %w", s.o.StateDir, err)
	}
	s.own, s.client = d, d
	fmt.Fprintf(s.errw, "(no daemon ran on %s: this session runs one; its pools stop when you leave)\n", s.o.StateDir)
	if f, ok := logw.(*os.File); ok && f != os.Stderr {
		fmt.Fprintf(s.errw, "(its log: %s)\n", f.Name())
	}
	return nil
}

// shortTime logs the time of day only: the session is now.
func shortTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05"))
	}
	return a
}

func (s *session) close() error {
	if s.own == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	return s.own.Stop(ctx)
}

// edit is the terminal session: readline, history, completion.
func (s *session) edit(ctx context.Context) error {
	hist, err := openHistory(s.o.HistoryFile)
	if err != nil {
		return err
	}
	defer hist.Close()
	comp := &completer{}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:                 s.paint(bold, prompt),
		AutoComplete:           comp,
		Stdin:                  s.o.Stdin,
		Stdout:                 s.o.Stdout,
		Stderr:                 s.o.Stderr,
		DisableAutoSaveHistory: true, // a multi-line statement is one entry: see save
		HistoryLimit:           historyLimit,
		HistorySearchFold:      true,
	})
	if err != nil {
		return err
	}
	defer rl.Close()
	for _, h := range hist.entries {
		rl.SaveHistory(h) // no HistoryFile: in memory only
	}
	// Everything is printed from this goroutine, between Readline calls:
	// readline's writers are not safe against its own goroutine (they read
	// its completion state unlocked), so the session's daemon logs to a
	// file rather than to the terminal.
	if err := os.MkdirAll(s.o.StateDir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(s.o.StateDir, "daemon.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	if err := s.connect(logf); err != nil {
		return err
	}
	defer s.close()
	comp.names = newNames(s.client)
	fmt.Fprintln(s.errw, "CloudSpeak: statements of the language, `help` for the commands, Tab completes, Ctrl-D leaves.")

	var buf []string
	// Leaving on ctx's end (SIGTERM, a closed terminal) still stops the
	// session's daemon gracefully: closing readline ends Readline.
	defer context.AfterFunc(ctx, func() { rl.Close() })()
	for ctx.Err() == nil {
		if len(buf) == 0 {
			rl.SetPrompt(s.paint(bold, prompt))
		} else {
			rl.SetPrompt(contPrompt)
		}
		comp.setPending(strings.Join(buf, "\n"))
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			if len(buf) == 0 && strings.TrimSpace(line) == "" {
				fmt.Fprintln(s.errw, "(Ctrl-D or exit leaves)")
			}
			buf = nil // Ctrl-C drops the line and any statement begun
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		if len(buf) == 0 && isLeave(line) {
			return nil
		}
		s.line++
		buf = append(buf, line)
		text := strings.Join(buf, "\n")
		if lang.Incomplete(text) {
			continue
		}
		buf = nil
		if strings.TrimSpace(text) == "" {
			continue
		}
		entry := historyEntry(text)
		rl.SaveHistory(entry)
		if err := hist.Add(entry); err != nil {
			fmt.Fprintf(s.errw, "(history not saved: %v)\n", err)
		}
		s.execute(ctx, text)
	}
	return nil
}

func isLeave(line string) bool {
	w := strings.TrimSpace(line)
	return w == "exit" || w == "quit"
}

// plain reads statements from a pipe or a file, as the prompt would take
// them, without editing, history or prompts.
func (s *session) plain(ctx context.Context) error {
	if err := s.connect(s.errw); err != nil {
		return err
	}
	defer s.close()
	lines := make(chan string)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	// The reader is plain's: it ends at the end of input, or when plain
	// returns (closing the input unblocks a read in progress).
	defer s.o.Stdin.Close()
	go func() {
		defer close(lines)
		readErr <- readLines(s.o.Stdin, lines, done)
	}()
	var buf []string
	flush := func() {
		text := strings.Join(buf, "\n")
		buf = nil
		if strings.TrimSpace(text) != "" && ctx.Err() == nil {
			s.execute(ctx, text)
		}
	}
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.interrupted = true // Ctrl-C, SIGTERM, or a closed terminal
			s.mu.Unlock()
			return s.result()
		case line, ok := <-lines:
			if !ok {
				if len(buf) > 0 {
					flush() // an unclosed { at the end: let the checker say so
				}
				if err := <-readErr; err != nil {
					return err
				}
				return s.result()
			}
			if len(buf) == 0 && isLeave(line) {
				return s.result()
			}
			s.line++
			buf = append(buf, line)
			if !lang.Incomplete(strings.Join(buf, "\n")) {
				flush()
			}
		}
	}
}

// execute runs one statement (or several on a line) and prints the answer.
// Ctrl-C while it runs stops it, not the session.
func (s *session) execute(ctx context.Context, text string) {
	// The statement is named "repl" and starts on its session line (blank
	// lines before it are empty statements): diagnostics then say
	// repl:LINE:COL, and piped scripts get their own line numbers.
	first := s.line - strings.Count(text, "\n")
	ctx, stop := context.WithCancel(ctx)
	s.mu.Lock()
	s.stopStatement = stop
	s.mu.Unlock()
	req := control.Request{
		Statements: strings.Repeat("\n", first-1) + text, Source: "repl", Session: s.id,
		Dir: s.cwd, Color: s.o.Color,
	}
	for {
		resp := s.answer(ctx, req)
		if resp.Sync == nil || resp.Status != 0 {
			break
		}
		if st := resp.Sync.Run(ctx, s.o.Stdout, s.o.Stderr, s.interactive); st != 0 || resp.Rest == "" {
			s.failed = max(s.failed, st)
			break
		}
		req.Statements = resp.Rest // what followed the sync on the line
	}
	s.mu.Lock()
	s.stopStatement = nil
	s.mu.Unlock()
	stop()
}

// answer sends one request and prints the answer, running the shell it
// asks for (instance ssh).
func (s *session) answer(ctx context.Context, req control.Request) control.Response {
	resp := s.client.Execute(ctx, req)
	if ctx.Err() != nil && resp.Status != 0 {
		resp.Error = "interrupted: " + resp.Error
	}
	s.failed = max(s.failed, resp.Status)
	io.WriteString(s.out, s.colorize(resp.Output))
	if resp.Notice != "" {
		fmt.Fprintln(s.errw, resp.Notice)
	}
	if resp.Error != "" {
		msg := resp.Error
		if !strings.HasSuffix(msg, "\n") { // not already diagnostics
			msg = s.paint(red, "error: ") + msg + "\n"
		}
		io.WriteString(s.errw, msg)
	}
	if strings.TrimSpace(req.Statements) == "help" && resp.Status == 0 {
		io.WriteString(s.out, keysHelp)
	}
	if resp.Exec != nil && resp.Status == 0 {
		// The shell reads the terminal itself: readline is not reading
		// now (it reads only inside Readline), so nothing is taken from it.
		var in io.Reader = s.o.Stdin
		if !s.interactive {
			in = strings.NewReader("") // a script's lines are statements, not shell input
		}
		if st := resp.Exec.Run(in, s.o.Stdout, s.o.Stderr); st != 0 {
			fmt.Fprintf(s.errw, "(shell exit status %d)\n", st)
		}
	}
	return resp
}

const keysHelp = `
At this prompt:
  Tab        complete keywords, verbs, pools and instances
  Up, Down   earlier statements (Ctrl-R searches them)
  Ctrl-C     drop the line, or the statement begun, or stop a running command
  Ctrl-D     leave (also: exit, quit)
  An open { continues the statement on the next line.
`

// readLines sends r's lines to lines until the end of input or done.
func readLines(r io.Reader, lines chan<- string, done <-chan struct{}) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		case <-done:
			return nil
		}
	}
	return sc.Err()
}
