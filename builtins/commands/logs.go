package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// logLines is how many of the last lines `instance logs` shows.
const logLines = 100

// session is how the client reaches an instance itself (instance ssh,
// instance logs follow): a login over SSH, or a shell in a local
// instance's directory.
func (x *commander) session(in runtime.Instance) (*control.Exec, error) {
	if acc := x.Access[in.Pool]; acc != nil && acc.Login != nil {
		login := *acc.Login
		t, err := acc.Target(in)
		if err != nil {
			return nil, err
		}
		login.Host = t.Host
		if t.Port != 0 { // else the pool's ssh_port
			login.Port = t.Port
		}
		if t.User != "" {
			login.User = t.User
		}
		return &control.Exec{Instance: in.Name, SSH: &login}, nil
	}
	dir, env, err := x.Local.Shell(in)
	if err != nil {
		return nil, err
	}
	return &control.Exec{Instance: in.Name, Dir: dir, Env: env}, nil
}

// logs shows an instance's log: `instance logs INSTANCE ["FILE"]
// [follow]`. A local instance's is its output; a remote one's, the
// system journal; a FILE names another (relative to a local instance's
// directory, or the login's home). The last lines are printed; with
// follow, the client follows the log itself until interrupted.
func (x *commander) logs(ctx context.Context, v *lang.Verb) error {
	in, err := x.one(ref(v.Args[0]))
	if err != nil {
		return err
	}
	var file string
	follow := false
	for _, a := range v.Args[1:] {
		switch {
		case a.Str != nil:
			q, err := lang.Interpret(a.Str, lang.String)
			if err != nil {
				return err
			}
			file = q.Str
		case a.Word != nil && a.Word.Name == "follow":
			follow = true
		}
	}
	remote := x.Access[in.Pool] != nil && x.Access[in.Pool].Login != nil
	if file == "" && !remote {
		if file, err = x.Local.LogPath(in); err != nil {
			return err
		}
	}
	command := fmt.Sprintf("tail -n %d -- %s", logLines, shellQuote(file))
	if file == "" {
		command = fmt.Sprintf("journalctl -n %d --no-pager", logLines)
	}
	if follow {
		s, err := x.session(in)
		if err != nil {
			return err
		}
		s.Command = strings.Replace(strings.Replace(command, "tail -n", "tail -F -n", 1), "--no-pager", "--no-pager -f", 1)
		x.exec = s
		return nil
	}
	return x.remote(in.Pool).Run(ctx, in, command, x.out)
}

// shellQuote quotes s for /bin/sh: one word, whatever it holds.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
