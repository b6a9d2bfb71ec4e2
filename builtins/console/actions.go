package console

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// The page's actions: each a POST, by a form (with the session's CSRF
// token) or a script (with a bearer token), refused unless the daemon
// allows actions. Each is logged by the engine as a decision whose rule
// names the action and who asked.

// allowed checks that the console may act, that a form post carries its
// session's CSRF token, and that the request's pool exists; it answers a
// refusal itself.
func (s *Server) allowed(w http.ResponseWriter, r *http.Request) (viewer, runtime.PoolStatus, bool) {
	v := viewerOf(r)
	if s.cfg.Controls == nil {
		s.fail(w, r, httpError{http.StatusForbidden, "the console is read-only: start the daemon with --console-actions and --console-token-file FILE to act from it"})
		return v, runtime.PoolStatus{}, false
	}
	if v.CSRF != "" && r.PostFormValue("csrf") != v.CSRF {
		s.fail(w, r, httpError{http.StatusForbidden, "the form is stale or not this site's (no CSRF token): reload the page and try again"})
		return v, runtime.PoolStatus{}, false
	}
	p, err := s.pool(r.PathValue("pool"))
	if err != nil {
		s.fail(w, r, err)
		return v, p, false
	}
	return v, p, true
}

// done answers an action: a browser goes back to the pool's page, a
// script gets what changed.
func done(w http.ResponseWriter, r *http.Request, pool string, result any) {
	if wantsHTML(r) {
		http.Redirect(w, r, "/pools/"+pool, http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, result)
}

func (s *Server) pool(name string) (runtime.PoolStatus, error) {
	st := s.cfg.Source.Status()
	i := slices.IndexFunc(st.Pools, func(p runtime.PoolStatus) bool { return p.Name == name })
	if i < 0 {
		return runtime.PoolStatus{}, httpError{http.StatusNotFound, fmt.Sprintf("no pool %q", name)}
	}
	return st.Pools[i], nil
}

// setSize sets a pool's target size, within MIN..MAX: POST
// /api/pools/POOL/size with size=N.
func (s *Server) setSize(w http.ResponseWriter, r *http.Request) {
	v, p, ok := s.allowed(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PostFormValue("size"))
	if err != nil {
		s.fail(w, r, httpError{http.StatusBadRequest, fmt.Sprintf("size %q: want a whole number from %d to %d", r.PostFormValue("size"), p.Min, p.Max)})
		return
	}
	if n < p.Min || n > p.Max {
		s.fail(w, r, httpError{http.StatusBadRequest, fmt.Sprintf("size %d is outside pool %s's range %d..%d: set POOL min|max changes the range", n, p.Name, p.Min, p.Max)})
		return
	}
	why := fmt.Sprintf("console: set %s size %d (by %s)", p.Name, n, v.who())
	target, err := s.cfg.Controls.SetTarget(p.Name, n, why)
	if err != nil {
		s.fail(w, r, httpError{http.StatusConflict, err.Error()})
		return
	}
	s.cfg.Log.Info("console: set size", "pool", p.Name, "target", target, "by", v.who())
	done(w, r, p.Name, struct {
		Pool    string `json:"pool"`
		Target  int    `json:"target"`
		Message string `json:"message"`
	}{p.Name, target, fmt.Sprintf("pool %s: target %d", p.Name, target)})
}

// maintain drains an instance (takes it out of rotation, under
// maintenance) or puts it back: POST
// /api/pools/POOL/instances/NAME/maintain with on=true or on=false.
func (s *Server) maintain(w http.ResponseWriter, r *http.Request) {
	v, p, ok := s.allowed(w, r)
	if !ok {
		return
	}
	on, err := strconv.ParseBool(r.PostFormValue("on"))
	if err != nil {
		s.fail(w, r, httpError{http.StatusBadRequest, fmt.Sprintf("on %q: want true (drain, maintenance) or false (back in service)", r.PostFormValue("on"))})
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(p.Instances, func(in runtime.Instance) bool {
		return in.Name == name && (in.State == runtime.Running || in.State == runtime.Starting)
	})
	if i < 0 {
		s.fail(w, r, httpError{http.StatusNotFound, fmt.Sprintf("pool %s has no running instance %q", p.Name, name)})
		return
	}
	verb := "stop_maintain"
	if on {
		verb = "start_maintain"
	}
	why := fmt.Sprintf("console: instance %s %s/%s (by %s)", verb, p.Name, name, v.who())
	// By ID: instance names repeat across pools.
	_, drain, err := s.cfg.Controls.MaintainInstance(r.Context(), p.Instances[i].ID, on, why)
	if err != nil {
		s.fail(w, r, httpError{http.StatusConflict, err.Error()})
		return
	}
	s.cfg.Log.Info("console: "+verb, "pool", p.Name, "instance", name, "by", v.who())
	msg := fmt.Sprintf("%s/%s back in service", p.Name, name)
	if on {
		msg = fmt.Sprintf("%s/%s under maintenance, out of rotation", p.Name, name)
		if drain != "" {
			msg += ": " + drain
		}
	}
	done(w, r, p.Name, struct {
		Pool        string `json:"pool"`
		Instance    string `json:"instance"`
		Maintenance bool   `json:"maintenance"`
		Drain       string `json:"drain"`
		Message     string `json:"message"`
	}{p.Name, name, on, drain, msg})
}
