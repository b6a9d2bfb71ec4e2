package console

import (
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// The views: each builds one body from the engine's status and decision
// log, which the page renders as HTML (templates/NAME.html) and the API
// writes as JSON, so the two say the same. The JSON follows the project's
// rules (spec/language.md, "JSON output"): snake_case, times in RFC 3339,
// durations as strings with units, empty lists as [].

// A view answers one request: its template's name and body, or an error
// with its HTTP status.
type viewFunc func(r *http.Request, now time.Time) (name string, body any, err error)

// httpError is a view's refusal: a status and what to say.
type httpError struct {
	code int
	msg  string
}

func (e httpError) Error() string { return e.msg }

type poolsBody struct {
	Pools []poolView `json:"pools"`
}

type poolBody struct {
	Pool      poolView       `json:"pool"`
	Decisions []decisionView `json:"decisions"` // the pool's last, newest first
}

type decisionsBody struct {
	Filter    filter         `json:"filter"`
	Pools     []string       `json:"pools"`   // the pools one may filter on
	Actions   []string       `json:"actions"` // the actions one may filter on
	Total     int            `json:"total"`   // decisions the daemon keeps
	Decisions []decisionView `json:"decisions"`
}

// filter picks decisions: of one pool, of one action, or only failures
// (failure handling and errors).
type filter struct {
	Pool     string `json:"pool"`
	Action   string `json:"action"`
	Failures bool   `json:"failures"`
}

type poolView struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	Min      int    `json:"min"`
	Max      int    `json:"max"`
	Target   int    `json:"target"`
	// Running counts the instances running; Starting and Failed the
	// others. The chart draws Running beside Target.
	Running  int `json:"running"`
	Starting int `json:"starting"`
	Failed   int `json:"failed"`
	// State is running, stopped or maintenance; Notes say what else holds
	// it (a rolling restart, a backoff, its leader in a cluster).
	State       string           `json:"state"`
	Notes       []string         `json:"notes"`
	Primary     bool             `json:"primary"`
	CooldownOut jsonout.Duration `json:"scale_out_cooldown_left,omitempty"`
	CooldownIn  jsonout.Duration `json:"scale_in_cooldown_left,omitempty"`
	Instances   []instanceView   `json:"instances"`
	Rules       []ruleView       `json:"rules"`
	Keeps       []keepView       `json:"keeps"`
	Chart       chart            `json:"chart"`
}

type instanceView struct {
	Name    string           `json:"name"`
	ID      string           `json:"id"` // the provider's: an EC2 instance ID, NAME-PID-START for a local process
	State   string           `json:"state"`
	Role    string           `json:"role"`
	Address string           `json:"address"`
	Zone    string           `json:"zone"`
	Started time.Time        `json:"started"`
	Age     jsonout.Duration `json:"age"`
	// Maintenance says it is drained, under maintenance.
	Maintenance bool   `json:"maintenance"`
	Probes      string `json:"probes"` // the heartbeat's last results
	Reason      string `json:"reason"` // why it failed, as its provider tells
}

type ruleView struct {
	Text string `json:"text"`
	Pos  string `json:"pos"`
	// Now is what it sees (cpu=42%); Thresholds what it compares with.
	Now        string           `json:"now"`
	Thresholds []string         `json:"thresholds"`
	For        jsonout.Duration `json:"for,omitempty"`
	// PendingSince is when its condition began to hold, while it waits
	// out its window (Waits left); zero when it does not hold.
	PendingSince time.Time        `json:"pending_since,omitzero"`
	Waits        jsonout.Duration `json:"waits,omitempty"`
	// Status is waiting (does not hold), pending, held, suppressed,
	// fired or running; Why says more.
	Status string `json:"status"`
	Why    string `json:"why"`
	Last   string `json:"last"`
}

type keepView struct {
	Text    string `json:"text"`
	Pos     string `json:"pos"`
	Now     string `json:"now"`
	Target  string `json:"target"`
	Desired int    `json:"desired"`
	Wish    int    `json:"wish"`
	Why     string `json:"why"`
	Status  string `json:"status"`
}

// decisionView is a decision (its JSON is the decision log's own), and
// whether it is a failure.
type decisionView struct {
	decision.Decision
	Failure bool `json:"failure"`
}

func (s *Server) poolsView(r *http.Request, now time.Time) (string, any, error) {
	st := s.cfg.Source.Status()
	kinds := s.cfg.Source.Providers()
	decs := s.cfg.Source.Decisions()
	body := poolsBody{Pools: []poolView{}}
	for i := range st.Pools {
		body.Pools = append(body.Pools, s.poolOf(&st.Pools[i], kinds, decs, now))
	}
	return "pools", body, nil
}

func (s *Server) poolView(r *http.Request, now time.Time) (string, any, error) {
	name := r.PathValue("pool")
	st := s.cfg.Source.Status()
	i := slices.IndexFunc(st.Pools, func(p runtime.PoolStatus) bool { return p.Name == name })
	if i < 0 {
		return "", nil, httpError{http.StatusNotFound, fmt.Sprintf("no pool %q", name)}
	}
	decs := s.cfg.Source.Decisions()
	body := poolBody{Pool: s.poolOf(&st.Pools[i], s.cfg.Source.Providers(), decs, now)}
	body.Decisions = pick(decs, filter{Pool: name}, 50)
	return "pool", body, nil
}

// timelineMax bounds the decisions the timeline page lists; the API gives
// all that match.
const timelineMax = 200

func (s *Server) decisionsView(r *http.Request, now time.Time) (string, any, error) {
	q := r.URL.Query()
	f := filter{Pool: q.Get("pool"), Action: q.Get("action"), Failures: q.Get("failures") != ""}
	if f.Action != "" && !slices.Contains(decision.Actions(), decision.Action(f.Action)) {
		return "", nil, httpError{http.StatusBadRequest, fmt.Sprintf("no action %q: the actions are those of spec/language.md §14", f.Action)}
	}
	decs := s.cfg.Source.Decisions()
	body := decisionsBody{Filter: f, Pools: []string{}, Actions: []string{}, Total: len(decs)}
	for _, p := range s.cfg.Source.Status().Pools {
		body.Pools = append(body.Pools, p.Name)
	}
	for _, a := range decision.Actions() {
		body.Actions = append(body.Actions, string(a))
	}
	limit := timelineMax
	if strings.HasPrefix(r.URL.Path, "/api/") {
		limit = len(decs)
	}
	body.Decisions = pick(decs, f, limit)
	return "decisions", body, nil
}

// failure says whether an action is failure handling or an error: what
// "failures only" keeps.
func failure(a decision.Action) bool {
	switch a {
	case decision.Failed, decision.Replace, decision.Promote, decision.Recovered, decision.Stopped, decision.Backoff, decision.Error:
		return true
	}
	return false
}

// pick returns up to limit decisions that f keeps, newest first.
func pick(decs []decision.Decision, f filter, limit int) []decisionView {
	out := []decisionView{}
	for i := len(decs) - 1; i >= 0 && len(out) < limit; i-- {
		d := decs[i]
		if f.Pool != "" && d.Pool != f.Pool || f.Action != "" && string(d.Action) != f.Action || f.Failures && !failure(d.Action) {
			continue
		}
		out = append(out, decisionOf(d))
	}
	return out
}

// MarshalJSON writes the decision's own fields and failure, in one
// object: the embedded Decision's MarshalJSON would leave failure out.
func (v decisionView) MarshalJSON() ([]byte, error) {
	b, err := jsonout.Marshal(v.Decision)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, " \n")
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("a decision's JSON is not an object: %s", b)
	}
	return fmt.Appendf(b[:len(b)-1], `,"failure":%t}`, v.Failure), nil
}

func decisionOf(d decision.Decision) decisionView {
	return decisionView{Decision: d, Failure: failure(d.Action)}
}

func (s *Server) poolOf(p *runtime.PoolStatus, kinds map[string]string, decs []decision.Decision, now time.Time) poolView {
	v := poolView{Name: p.Name, Provider: kinds[p.Name], Min: p.Min, Max: p.Max, Target: p.Target, State: "running",
		Notes: []string{}, Primary: p.Primary, Instances: []instanceView{}, Rules: []ruleView{}, Keeps: []keepView{},
		CooldownOut: left(p.OutUntil, now), CooldownIn: left(p.InUntil, now)}
	switch {
	case p.Stopped:
		v.State = "stopped"
	case p.Maintain:
		v.State = "maintenance"
	}
	if p.Restart > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("rolling restart: %d instances to replace", p.Restart))
	}
	if p.StartAfter.After(now) {
		v.Notes = append(v.Notes, "backing off: instances failed soon after starting; no new one for "+left(p.StartAfter, now).String())
	}
	if p.Leader != "" {
		v.Notes = append(v.Notes, "led by "+p.Leader)
	}
	if p.Unled != "" {
		v.Notes = append(v.Notes, "no leader: "+p.Unled)
	}
	insts := slices.Clone(p.Instances)
	slices.SortFunc(insts, func(a, b runtime.Instance) int { return cmp.Compare(a.Name, b.Name) })
	for _, in := range insts {
		switch in.State {
		case runtime.Running:
			v.Running++
		case runtime.Starting:
			v.Starting++
		case runtime.Failed:
			v.Failed++
		}
		v.Instances = append(v.Instances, instanceView{Name: in.Name, ID: in.ID, State: string(in.State), Role: string(in.Role),
			Address: in.Addr, Zone: in.Zone, Started: in.Started, Age: since(in.Started, now), Maintenance: in.Maintain,
			Probes: p.Probes[in.Name], Reason: in.Reason})
	}
	for _, r := range p.Rules {
		v.Rules = append(v.Rules, ruleOf(r, now))
	}
	for _, k := range p.Keeps {
		kv := keepView{Text: k.Text, Pos: k.Pos, Now: decision.Readings(k.Values), Desired: k.Desired, Wish: k.Wish, Why: k.Why, Status: "following"}
		if len(k.Values) > 0 {
			kv.Target = decision.Format(k.Target, k.Values[0].Type)
		}
		switch {
		case k.Held:
			kv.Status = "held: no data"
		case k.Suppressed != "":
			kv.Status = "suppressed: " + k.Suppressed
		case k.Won:
			kv.Status = "sets the size"
		}
		v.Keeps = append(v.Keeps, kv)
	}
	v.Chart = s.chartOf(p, decs, now)
	return v
}

func ruleOf(r runtime.RuleStatus, now time.Time) ruleView {
	v := ruleView{Text: r.Text, Pos: r.Pos, Now: decision.Readings(r.Values), Thresholds: []string{}, Status: "waiting",
		PendingSince: r.PendingSince}
	v.For = r.For
	for _, l := range r.Levels {
		op := "<"
		if l.Above {
			op = ">"
		}
		v.Thresholds = append(v.Thresholds, l.Metric+" "+op+" "+l.Text)
	}
	switch {
	case r.Running:
		v.Status = "running"
	case r.Suppressed != "":
		v.Status, v.Why = "suppressed", r.Suppressed
	case r.Held:
		v.Status, v.Why = "held", "no data for a metric it reads"
	case !r.PendingSince.IsZero():
		v.Status = "pending"
		v.Waits = left(r.PendingSince.Add(time.Duration(r.For)), now)
	case r.Fired:
		v.Status = "fired"
	}
	if r.Last != nil {
		v.Last = r.Last.Time.Format(time.TimeOnly) + " " + string(r.Last.Action) + r.Last.Details()
	}
	return v
}

// left is the time from now until t, in whole seconds (0 once past).
func left(t, now time.Time) jsonout.Duration {
	if !t.After(now) {
		return 0
	}
	return jsonout.Duration(t.Sub(now).Round(time.Second))
}

// since is the time from t until now, in whole seconds.
func since(t, now time.Time) jsonout.Duration {
	if t.IsZero() {
		return 0
	}
	return jsonout.Duration(max(now.Sub(t), 0).Round(time.Second))
}
