package hostsfile

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// maxFile bounds the hosts file: the new content travels in the command
// line (a Remote has no standard input), which Linux limits to 128 KiB.
const maxFile = 64 << 10

// changedStatus is the exit status of a write that found the file changed
// since it was read.
const changedStatus = 75

// rewriteRemote rewrites file on the instance (Rewrite), in two commands:
// one reads it, the other writes it back unless it changed meanwhile (then
// the whole rewrite is tried again, once). A file that already has the
// line is not written at all.
func rewriteRemote(ctx context.Context, remote runtime.Remote, in runtime.Instance, file, pool, name, ip string) (shadowed []int, err error) {
	for attempt := 0; ; attempt++ {
		var out bytes.Buffer
		if err := remote.Run(ctx, in, readCommand(file), &out); err != nil {
			return nil, fmt.Errorf("read %s: %w%s", file, err, tail(out.String()))
		}
		old := out.Bytes()
		next, shadowed := Rewrite(old, pool, name, ip)
		if bytes.Equal(next, old) {
			return shadowed, nil
		}
		cmd, err := writeCommand(file, old, next)
		if err != nil {
			return nil, err
		}
		out.Reset()
		err = remote.Run(ctx, in, cmd, &out)
		if err == nil {
			return shadowed, nil
		}
		var ee interface{ ExitStatus() int }
		changed := errors.As(err, &ee) && ee.ExitStatus() == changedStatus ||
			strings.Contains(out.String(), "changed while cloudspeak rewrote it")
		if !changed || attempt > 0 {
			return nil, fmt.Errorf("write %s: %w%s", file, err, tail(out.String()))
		}
	}
}

// readCommand prints the file, or nothing if there is none yet.
func readCommand(file string) string {
	f := quote(file)
	return "if [ -e " + f + " ]; then cat -- " + f + "; fi"
}

// writeCommand writes next to file, unless the file's content is no
// longer old (md5: coreutils and busybox have md5sum).
//
// The new content is first written whole to a temporary file beside the
// file, then copied over it with cat: a connection lost midway leaves the
// file as it was, never half written. cat, not mv, because it keeps the
// file itself (its inode, owner, mode, SELinux label): /etc/hosts in a
// container is a bind mount, which a rename cannot replace, and a file
// others hard-link or watch by inode keeps working. The cost is that a
// reader may see the file truncated during the one write(2) of a small
// file; resolvers read it again on the next lookup.
func writeCommand(file string, old, next []byte) (string, error) {
	if len(next) > maxFile {
		return "", fmt.Errorf("%s would be %d bytes: more than the %d a rewrite sends", file, len(next), maxFile)
	}
	if bytes.IndexByte(next, 0) >= 0 {
		return "", fmt.Errorf("%s holds a NUL byte: not a hosts file", file)
	}
	f := quote(file)
	sum := fmt.Sprintf("%x", md5.Sum(old))
	return fmt.Sprintf(`f=%s; t="$f.cloudspeak.$$"
s=$( { if [ -e "$f" ]; then cat -- "$f"; fi; } | md5sum ) || exit 1
case "$s" in %s*) ;; *) echo "$f changed while cloudspeak rewrote it" >&2; exit %d;; esac
umask 022
printf '%%s' %s > "$t" || { rm -f -- "$t"; exit 1; }
cat -- "$t" > "$f"; rc=$?; rm -f -- "$t"; exit $rc`, f, sum, changedStatus, quote(string(next))), nil
}

// quote quotes s for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// tail is the end of a command's output, to add to its error.
func tail(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	if len(out) > 300 {
		out = "…" + out[len(out)-300:]
	}
	return ": " + out
}
