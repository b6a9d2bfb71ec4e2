package lang

// The grammar, as participle structs. They follow the surface syntax closely;
// meaning (types, units, names) is the checker's job. Every node records
// where it starts (Pos) and where it ends (EndPos, exclusive).
//
// A file is a list of statements, each ended by a newline or ';'. parse.go
// splits the file into top-level statements before participle sees them, so
// one syntax error does not hide the errors after it; each statement is then
// parsed with Stmt as the root.

// Node records where a syntax node starts and ends; every node embeds it.
type Node struct {
	Pos    Pos
	EndPos Pos // just past the node's last token
}

// Range returns the node's source span.
func (n Node) Range() Range { return Range{Start: n.Pos, End: n.EndPos} }

// File is a parsed policy file (or a -e string, or a REPL entry).
type File struct {
	Name     string
	Src      []byte
	Stmts    []*Stmt
	Comments []Comment

	// brokenPools names pools whose declaration had a syntax error; the
	// checker treats them as declared so it does not repeat the error.
	brokenPools map[string]bool
}

// Stmt is one top-level statement; exactly one field is set.
type Stmt struct {
	Node
	Pool      *PoolDecl   `parser:"  @@"`
	When      *Rule       `parser:"| @@"`
	OnFailure *OnFailure  `parser:"| @@"`
	Every     *EveryJob   `parser:"| @@"`
	At        *AtSchedule `parser:"| @@"`
	Let       *LetDecl    `parser:"| @@"`
	Command   *Command    `parser:"| @@"`
}

// PoolDecl declares a pool: `pool NAME { … }`.
type PoolDecl struct {
	Node
	Name  *Ident      `parser:"'pool' @@ '{'"`
	Items []*PoolItem `parser:"( @@ ( Term @@ )* )? '}'"`

	broken bool // an item had a syntax error: skip checks across items
}

// PoolItem is one statement inside a pool block; exactly one field is set.
type PoolItem struct {
	Node
	// Rules come first: they are most of a large policy, and participle
	// tries the alternatives in order.
	When      *Rule       `parser:"  @@"`
	Keep      *Keep       `parser:"| @@"`
	OnFailure *OnFailure  `parser:"| @@"`
	Every     *EveryJob   `parser:"| @@"`
	At        *AtSchedule `parser:"| @@"`
	Provider  *BlockDecl  `parser:"| 'provider' @@"`
	Balancer  *BlockDecl  `parser:"| 'balancer' @@"`
	Instances *Instances  `parser:"| @@"`
	Port      *Value      `parser:"| 'port' @@"`
	Check     *Value      `parser:"| 'check' 'every' @@"`
	Cooldown  *Value      `parser:"| 'cooldown' @@"`
	Standby   *Value      `parser:"| 'standby' @@"`
	Heartbeat *Heartbeat  `parser:"| @@"`
	Storage   *Storage    `parser:"| @@"`
	Primary   bool        `parser:"| @'primary'"`
	Install   *Provision  `parser:"| 'install' @@"`
	Configure *Provision  `parser:"| 'configure' @@"`
	Env       *Map        `parser:"| 'env' @@"`
	Metric    *MetricDecl `parser:"| 'metric' @@"`
	// Volume is `volume NAME { settings }`: a disk of the pool's
	// instances (one each), or, in a primary pool, the one disk that
	// follows the primary. Its settings are the provider kind's to say
	// (Options.Volumes): the language knows only that it has a name.
	Volume *BlockDecl `parser:"| 'volume' @@"`
}

// MetricDecl declares a metric of the pool and where it comes from:
// `metric NAME KIND { unit U; [by …;] settings }`, KIND being a source
// (prometheus, command, push). The language reads `unit` (the metric's
// type, so rules using it are checked) and whether it has `by` (a value
// per instance, rather than one number for the pool); the source's own
// settings are checked against its schema, as a provider's are.
type MetricDecl struct {
	Node
	Name   *Ident     `parser:"@@"`
	Source *BlockDecl `parser:"@@"`
}

// Provision is `install { STEP… }` or `configure { STEP… }`: the steps that
// set an instance up. Both run, install first, on each new instance before
// it is put in rotation; `instance install` runs both again and `instance
// reconfigure` only configure's, so configuration can change without a
// reinstall.
type Provision struct {
	Node
	Steps []*Step `parser:"'{' ( @@ ( Term @@ )* )? '}'"`
}

// Step is one provisioning step: `copy "LOCAL" to "REMOTE"` or `run "COMMAND"`.
// Other is any other word with its arguments, parsed so the checker can
// say which steps there are rather than the parser "unexpected".
type Step struct {
	Node
	Copy  *CopyStep  `parser:"  @@"`
	Run   *Value     `parser:"| 'run' @@"`
	Other *OtherStep `parser:"| @@"`
}

// OtherStep is a step the language does not know: `WORD ARG…`.
type OtherStep struct {
	Node
	Word *Ident `parser:"@@"`
	Args []*Arg `parser:"@@*"`
}

// CopyStep is `copy "LOCAL" to "REMOTE"`: a file or directory from this
// machine (relative to the policy file) to the instance.
type CopyStep struct {
	Node
	Src *Value `parser:"'copy' @@"`
	Dst *Value `parser:"( 'to' @@ )?"`
}

// BlockDecl is `provider KIND { settings }` or `balancer KIND { settings }`.
// Which settings a kind takes is checked against a BlockSchema.
type BlockDecl struct {
	Node
	Kind     *Ident     `parser:"@@"`
	Settings []*Setting `parser:"( '{' ( @@ ( Term @@ )* )? '}' )?"`
}

// Setting is `KEY ARG…` or `KEY { K = V, … }` inside a provider or balancer.
// A list setting separates its values with commas: `hosts "a", "b"`.
type Setting struct {
	Node
	Key  *Ident `parser:"@@"`
	Map  *Map   `parser:"( @@"`
	Args []*Arg `parser:"| @@+ )"`
}

// Map is `{ K = V, … }`; entries are separated by ',' or newlines.
type Map struct {
	Node
	Entries []*MapEntry `parser:"'{' ( @@ ( ( ',' | Term ) @@ )* )? ','? '}'"`
}

// MapEntry is `KEY = VALUE`.
type MapEntry struct {
	Node
	Key   *Ident `parser:"@@ '='"`
	Value *Value `parser:"@@"`
}

// Arg is one argument of a setting: a literal or a bare word. Comma
// records a ',' before it, which separates the values of a list setting.
type Arg struct {
	Node
	Comma bool   `parser:"@','?"`
	Value *Value `parser:"( @@"`
	Word  *Ident `parser:"| @@ )"`
}

// Instances is `instances MIN..MAX` or `instances N`.
type Instances struct {
	Node
	Min *Value `parser:"'instances' @@"`
	Max *Value `parser:"( '..' @@ )?"`
}

// Heartbeat is `heartbeat every D [timeout T] [recover N]`.
type Heartbeat struct {
	Node
	Every   *Value `parser:"'heartbeat' 'every' @@"`
	Timeout *Value `parser:"( 'timeout' @@ )?"`
	Recover *Value `parser:"( 'recover' @@ )?"`
}

// Storage is `storage "s3://…" at "/path" [every D]`.
type Storage struct {
	Node
	Source *Value `parser:"'storage' @@"`
	Path   *Value `parser:"'at' @@"`
	Every  *Value `parser:"( 'every' @@ )?"`
}

// WhenRule is `when CONDITION [for D] ACTION`.
type WhenRule struct {
	Node
	Cond   *Condition `parser:"'when' @@"`
	For    *Value     `parser:"( 'for' @@ )?"`
	Action *Action    `parser:"@@"`
}

// Keep is target tracking: `keep METRIC at TARGET [per instance]
// [tolerance P] [up after D] [down after D]` sizes its pool so that the
// metric stays near the target (spec §8, "Target tracking").
type Keep struct {
	Node
	Call        *Call         `parser:"'keep' ( @@"`
	Ref         *Ref          `parser:"       | @@ )"`
	Target      *Value        `parser:"'at' @@"`
	PerInstance bool          `parser:"@( 'per' 'instance' )?"`
	Options     []*KeepOption `parser:"@@*"`
}

// KeepOption is one of keep's options; exactly one field is set.
type KeepOption struct {
	Node
	Tolerance *Value `parser:"  'tolerance' @@"`
	Up        *Value `parser:"| 'up' 'after' @@"`
	Down      *Value `parser:"| 'down' 'after' @@"`
}

// Metric returns the metric the rule keeps, as written, and its
// aggregate ("" for a bare metric).
func (k *Keep) Metric() (*Ref, string) {
	if k.Call != nil {
		return k.Call.Arg, k.Call.Func.Name
	}
	return k.Ref, ""
}

// OnFailure is `on failure ACTION`.
type OnFailure struct {
	Node
	Action *Action `parser:"'on' 'failure' @@"`
}

// EveryJob is `every D ACTION`.
type EveryJob struct {
	Node
	Interval *Value  `parser:"'every' @@"`
	Action   *Action `parser:"@@"`
}

// AtSchedule is `at HH:MM [on DAYS] [UTC] ACTION`.
type AtSchedule struct {
	Node
	Time   *Value   `parser:"'at' @@"`
	Days   []*Ident `parser:"( 'on' @@ ( ',' @@ )* )?"`
	UTC    bool     `parser:"@'UTC'?"`
	Action *Action  `parser:"@@"`
}

// LetDecl is `let NAME = VALUE`.
type LetDecl struct {
	Node
	Name  *Ident `parser:"'let' @@ '='"`
	Value *Value `parser:"@@"`
}

// Action is what a rule, handler or schedule does; exactly one field is set.
type Action struct {
	Node
	Add      *Scale    `parser:"  'add' @@"`
	Remove   *Scale    `parser:"| 'remove' @@"`
	Replace  bool      `parser:"| @( 'replace' 'instance' )"`
	Promote  bool      `parser:"| @( 'promote' 'standby' )"`
	Sync     *Sync     `parser:"| @@"`
	Exec     *Exec     `parser:"| @@"`
	Set      *SetLimit `parser:"| @@"`
	Snapshot *Snapshot `parser:"| @@"`
}

// Snapshot is `snapshot VOLUME keep N` (or `snapshot POOL.VOLUME keep N`
// outside the pool): a copy of a pool's declared volume, keeping the N
// newest copies this policy made and deleting older ones.
type Snapshot struct {
	Node
	Volume *Ref   `parser:"'snapshot' @@"`
	Keep   *Value `parser:"( 'keep' @@ )?"`
}

// Exec is `exec "COMMAND" [timeout D]`: a command run by /bin/sh -c from
// the policy file's directory, killed (with its process group) after the
// timeout.
type Exec struct {
	Node
	Command *Value `parser:"'exec' @@"`
	Timeout *Value `parser:"( 'timeout' @@ )?"`
}

// Scale is the rest of `add …` or `remove …`: `[N] instance(s)` or `N%`.
type Scale struct {
	Node
	Count *Value `parser:"@@?"`
	Unit  *Ident `parser:"@@?"` // "instance" or "instances"
}

// Sync is `sync SRC to DST`.
type Sync struct {
	Node
	Src *Value `parser:"'sync' @@"`
	Dst *Value `parser:"'to' @@"`
}

// SetLimit is `set POOL min|max N`.
type SetLimit struct {
	Node
	Pool  *Ident `parser:"'set' @@"`
	Limit *Ident `parser:"@@"`
	Value *Value `parser:"@@"`
}

// Expr is a condition: `or` of `and`s of (possibly negated) comparisons.
type Expr struct {
	Node
	Left  *AndExpr   `parser:"@@"`
	Right []*AndExpr `parser:"( 'or' @@ )*"`
}

// AndExpr is `NOT and NOT …`.
type AndExpr struct {
	Node
	Left  *NotExpr   `parser:"@@"`
	Right []*NotExpr `parser:"( 'and' @@ )*"`
}

// NotExpr is `not NOT` or a comparison.
type NotExpr struct {
	Node
	Not *NotExpr    `parser:"  'not' @@"`
	Cmp *Comparison `parser:"| @@"`
}

// Comparison is `OPERAND [OP OPERAND]`; a lone operand is only valid when
// it is a parenthesized condition.
type Comparison struct {
	Node
	Left  *Operand  `parser:"@@"`
	Op    *Operator `parser:"( @@"`
	Right *Operand  `parser:"  @@ )?"`
}

// Operator is a comparison operator.
type Operator struct {
	Node
	Op string `parser:"@( '<=' | '>=' | '==' | '!=' | '<' | '>' )"`
}

// Operand is a literal, a metric (possibly aggregated or pool-qualified), a
// let name, or a parenthesized condition.
type Operand struct {
	Node
	Value *Value `parser:"  @@"`
	Call  *Call  `parser:"| @@"`
	Ref   *Ref   `parser:"| @@"`
	Paren *Expr  `parser:"| '(' @@ ')'"`
}

// Call is an aggregate over a pool's instances: `avg(cpu)`, `max(web.load)`.
type Call struct {
	Node
	Func *Ident `parser:"@@ '('"`
	Arg  *Ref   `parser:"@@ ')'"`
}

// Ref is `NAME` or `POOL.METRIC`.
type Ref struct {
	Node
	Pool *Ident `parser:"( @@ '.' )?"`
	Name *Ident `parser:"@@"`
}

// Command is one of PoolParty's CloudSpeak commands, usable in files, the
// REPL and shell one-liners. The checker validates verbs and arguments, so
// a misspelt verb gets a did-you-mean rather than a syntax error.
type Command struct {
	Node
	Pool     *Verb    `parser:"  'pool' @@"`
	Instance *Verb    `parser:"| 'instance' @@"`
	Sync     *Sync    `parser:"| @@"`
	Show     *Verb    `parser:"| 'show' @@"`
	Help     *Help    `parser:"| @@"`
	Explain  *Explain `parser:"| @@"`
	Metric   *Verb    `parser:"| 'metric' @@"`
}

// Verb is `VERB ARG…` after `pool`, `instance` or `show`.
type Verb struct {
	Node
	Name *Ident    `parser:"@@"`
	Args []*CmdArg `parser:"@@*"`
}

// CmdArg is a command argument: a word, a string, `in POOL`, or
// `NODE:"PATH"` for scp. An instance may be named with its pool,
// POOL/NODE, where a name alone would be ambiguous.
type CmdArg struct {
	Node
	HostPool *Ident `parser:"  ( ( @@ '/' )?"`
	Host     *Ident `parser:"    @@ ':' )?"` // the instance in NODE:"PATH"
	Str      *Value `parser:"  ( @@"`
	Pool     *Ident `parser:"  | ( @@ '/' )?"` // the pool in POOL/NODE
	Word     *Ident `parser:"    @@ )"`
}

// Explain is `explain [POOL]` (or `why [POOL]`): what each rule sees and
// waits for, and the last actions.
type Explain struct {
	Node
	Pool *Ident `parser:"( 'explain' | 'why' ) @@?"`
}

// Help is `help [TOPIC]`.
type Help struct {
	Node
	Topic *Ident `parser:"'help' @@?"`
}

// Ident is a name or bare word.
type Ident struct {
	Node
	Name string `parser:"@Ident"`
}

// Value is a literal: a number with its unit, a time of day or a string,
// exactly as written; exactly one field is set. Its meaning depends on where
// it stands, so the checker interprets it (see units.go).
type Value struct {
	Node
	Number string `parser:"  @Number"`
	Time   string `parser:"| @Time"`
	String string `parser:"| @String"` // with its quotes and escapes
}
