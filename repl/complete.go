package repl

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/lang"
)

// completer completes the word under the cursor from what may stand
// there: statement keywords at the start of a statement (the pool
// keywords inside a pool block), the verbs after `pool`, `instance` and
// `show`, help topics after `help`, and the names of the running pools
// and instances where a command takes them.
type completer struct {
	mu      sync.Mutex
	pending string // the lines of a statement begun, before this one
	names   *names
}

func (c *completer) setPending(s string) {
	c.mu.Lock()
	c.pending = s
	c.mu.Unlock()
}

// Do implements readline.AutoCompleter: it returns the endings of the
// candidates for the word before pos, and that word's length.
func (c *completer) Do(line []rune, pos int) ([][]rune, int) {
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	before := string(line[:pos])
	words, partial, depth, ok := lastStatement(pending, before)
	if !ok {
		return nil, 0 // inside a string or a comment
	}
	var out [][]rune
	for _, cand := range c.candidates(words, depth) {
		if strings.HasPrefix(cand, partial) {
			out = append(out, []rune(cand[len(partial):]+" "))
		}
	}
	return out, len([]rune(partial))
}

// candidates returns what may follow words at the start of a statement
// depth blocks deep.
func (c *completer) candidates(words []string, depth int) []string {
	if len(words) == 0 {
		switch depth {
		case 0:
			return append(lang.StatementKeywords(), "exit", "quit")
		case 1:
			return lang.PoolKeywords()
		}
		return nil // a provider's or balancer's settings: its own words
	}
	if depth > 0 {
		return nil
	}
	pools := func() []string { p, _ := c.names.get(); return p }
	instances := func() []string { _, i := c.names.get(); return i }
	switch words[0] {
	case "pool":
		switch len(words) {
		case 1:
			return lang.PoolVerbs
		case 2:
			return pools()
		}
	case "instance":
		switch {
		case len(words) == 1:
			return lang.InstanceVerbs
		case len(words) == 2 && words[1] == "start":
			return []string{"in"}
		case len(words) == 3 && words[1] == "start":
			return pools()
		case len(words) == 2 && words[1] == "cmd":
			return append(append([]string{"all"}, pools()...), instances()...)
		case len(words) == 2 && words[1] != "scp":
			return instances()
		}
	case "show":
		switch len(words) {
		case 1:
			return lang.ShowTopics
		case 2:
			return pools()
		}
	case "explain", "why":
		if len(words) == 1 {
			return pools()
		}
	case "help":
		if len(words) == 1 {
			return lang.HelpTopics()
		}
	case "on":
		if len(words) == 1 {
			return []string{"failure"}
		}
	}
	return nil
}

// lastStatement splits the statement the cursor is in into its complete
// words and the partial word at the cursor, and says how many blocks deep
// it stands. ok is false inside a string or a comment, where nothing is
// completed.
func lastStatement(pending, before string) (words []string, partial string, depth int, ok bool) {
	text := before
	if pending != "" {
		text = pending + "\n" + before
	}
	start := 0 // where the current statement begins
	open := eachCode(text, func(i int, c rune) bool {
		switch c {
		case '{':
			depth++
			start = i + 1
		case '}':
			depth--
			start = i + 1
		case ';', '\n':
			start = i + 1
		}
		return true
	})
	if open {
		return nil, "", depth, false
	}
	cur := text[start:]
	words = strings.Fields(cur)
	if len(words) > 0 && !strings.HasSuffix(cur, " ") && !strings.HasSuffix(cur, "\t") {
		partial, words = words[len(words)-1], words[:len(words)-1]
	}
	return words, partial, max(depth, 0), true
}

// names are the running pools and instances, asked of the daemon at most
// every namesTTL: Tab pressed twice asks once.
type names struct {
	client control.Client

	mu        sync.Mutex
	at        time.Time
	pools     []string
	instances []string
}

const (
	namesTTL     = 2 * time.Second
	namesTimeout = time.Second // a busy daemon costs a completion, not the prompt
)

func newNames(c control.Client) *names { return &names{client: c} }

func (n *names) get() (pools, instances []string) {
	if n == nil {
		return nil, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if time.Since(n.at) < namesTTL {
		return n.pools, n.instances
	}
	ctx, cancel := context.WithTimeout(context.Background(), namesTimeout)
	defer cancel()
	resp := n.client.Execute(ctx, control.Request{Statements: "pool list", JSON: true})
	var list []struct {
		Name      string `json:"name"`
		Instances []struct {
			Name string `json:"name"`
		} `json:"instances"`
	}
	if resp.Status != 0 || json.Unmarshal([]byte(resp.Output), &list) != nil {
		return n.pools, n.instances // keep the last good answer
	}
	n.pools, n.instances = nil, nil
	for _, p := range list {
		n.pools = append(n.pools, p.Name)
		for _, in := range p.Instances {
			n.instances = append(n.instances, in.Name)
		}
	}
	slices.Sort(n.instances)
	n.instances = slices.Compact(n.instances) // node0 of two pools is one word
	n.at = time.Now()
	return n.pools, n.instances
}
