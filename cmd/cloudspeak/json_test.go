package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/internal/s3test"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// jsonPolicy exercises what the JSON outputs hold: running instances, a
// pool with none, rules (one that has acted, with '>' and '&' in it, one
// with '<'), a keep rule on a declared metric, and jobs.
const jsonPolicy = `pool web {
  provider local {
    run "exec sleep 3600"
    grace 2s
  }
  instances 2..4
  check every 100ms
  metric backlog push { unit number }
  keep backlog at 1000 per instance
  when instances >= 2 for 1s exec "test 2 -gt 1 && true"
  when instances < 2 for 1h add instance
  every 1h exec "true"
}
pool idle {
  provider local { run "exec sleep 3600" }
  instances 0..1
}
every 1h exec "true"
`

// TestJSONOutputs holds the daemon's JSON outputs to the rules of spec
// §13's "JSON output", as a script would read them, against a real daemon:
// the one-liners' -o json, /status and /sd, and its JSON log (see
// checkJSON).
func TestJSONOutputs(t *testing.T) {
	d := startDaemon(t, jsonPolicy, "--log-format", "json", "--log-level", "debug")
	// Until the metric is pushed, the exec rule has acted, and the metric is read.
	pushed := false
	testenv.WaitFor(t, 20*time.Second, "web's two instances, its exec rule's run and its metric", func() bool {
		if !pushed {
			_, _, pushed = d.run("metric", "set", "web", "backlog", "500")
			return false
		}
		var pools []runtime.PoolStatus
		if json.Unmarshal(d.mustRun(t, "pool", "list", "web", "-o", "json"), &pools) != nil || len(pools) != 1 {
			return false
		}
		p := pools[0]
		return running(p) == 2 && len(p.Rules) == 2 && p.Rules[0].Last != nil && len(p.Metrics) == 1 && p.Metrics[0].Value != nil
	})

	for _, args := range [][]string{
		{"pool", "list", "-o", "json"},
		{"pool", "list", "idle", "-o", "json"},
		{"show", "pools", "-o", "json"},
		{"show", "instances", "-o", "json"},
		{"show", "instances", "idle", "-o", "json"},
		{"show", "schedules", "-o", "json"},
		{"explain", "-o", "json"},
		{"why", "idle", "-o", "json"},
		{"-o", "json", "-e", "pool list web"},
	} {
		checkJSON(t, strings.Join(args, " "), d.mustRun(t, args...), jsonCheck{})
	}
	checkJSON(t, "show rules -o json", d.mustRun(t, "show", "rules", "-o", "json"), jsonCheck{namesAtTop: true})
	for _, path := range []string{"/status", "/sd", "/sd?all=1", "/sd?pool=idle",
		"/api/pools", "/api/pools/web", "/api/pools/idle", "/api/decisions", "/api/decisions?failures=1&pool=web"} {
		checkJSON(t, "GET "+path, httpGet(t, "http://"+d.listen+path), jsonCheck{})
	}

	d.stop()
	records := strings.Split(strings.TrimSpace(d.log.String()), "\n")
	if len(records) < 5 || !strings.Contains(d.log.String(), `"msg":"decision"`) {
		t.Errorf("the daemon's JSON log has %d records, no decision:\n%s", len(records), d.log.String())
	}
	for i, rec := range records {
		checkJSON(t, fmt.Sprintf("the daemon's log, record %d", i+1), []byte(rec), jsonCheck{undocumented: true})
	}

}

// TestJSONOutputsTools is TestJSONOutputs for the commands that need no
// daemon: check, simulate and sync -o json.
func TestJSONOutputsTools(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "web.cloud")
	if err := os.WriteFile(policy, []byte(jsonPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	// check -o json, with and without errors.
	bad := filepath.Join(dir, "bad.cloud")
	os.WriteFile(bad, []byte("pool web {\n  provider local { run \"x\" }\n  instances 2..1\n  when cpu > 80% & load < 2 add instance\n}\n"), 0o644)
	for _, file := range []string{policy, bad} {
		var out bytes.Buffer
		run([]string{"check", "-o", "json", file}, stdio{in: strings.NewReader(""), out: &out, err: io.Discard})
		checkJSON(t, "check -o json "+filepath.Base(file), out.Bytes(), jsonCheck{})
	}

	// simulate -o json: a line per decision.
	trace := filepath.Join(dir, "trace.csv")
	os.WriteFile(trace, []byte("t,web.cpu\n0,90\n120,20\n"), 0o644)
	sim := filepath.Join(dir, "sim.cloud")
	os.WriteFile(sim, []byte("pool web {\n  provider local { run \"./server\" }\n  instances 1..3\n  when cpu > 80% for 1m add instance\n  on failure replace instance\n}\n"), 0o644)
	var out bytes.Buffer
	if st := run([]string{"simulate", "--trace", trace, "-o", "json", sim}, stdio{in: strings.NewReader(""), out: &out, err: io.Discard}); st != exitOK || out.Len() == 0 {
		t.Errorf("simulate -o json: status %d, %d bytes", st, out.Len())
	}
	checkJSON(t, "simulate -o json", out.Bytes(), jsonCheck{lines: true})

	t.Run("sync", func(t *testing.T) {
		_, err := s3test.Binary()
		testenv.NeedFound(t, err)
		srv, err := s3test.Start(filepath.Join(dir, "s3"))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop()
		if err := srv.CreateBucket("bkt"); err != nil {
			t.Fatal(err)
		}
		for _, kv := range srv.Env() {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		t.Setenv("CLOUDSPEAK_STATE", filepath.Join(dir, "state"))
		www := filepath.Join(dir, "www")
		os.MkdirAll(www, 0o755)
		os.WriteFile(filepath.Join(www, "index.html"), []byte("<p>hello</p>\n"), 0o644)
		for _, args := range [][]string{{"--dry-run", "--delete"}, {}, {}} {
			var out, errOut bytes.Buffer
			if st := run(append(append([]string{"sync", "-o", "json"}, args...), www, "s3://bkt/www"), stdio{in: strings.NewReader(""), out: &out, err: &errOut}); st != exitOK {
				t.Errorf("sync %s: status %d\n%s", strings.Join(args, " "), st, errOut.String())
			}
			checkJSON(t, "sync -o json "+strings.Join(args, " "), out.Bytes(), jsonCheck{})
		}
	})
}

// checkJSON checks one output, what, by the rules of spec §13's "JSON
// output". It is decoded and walked: every key (but those of objects whose
// keys are names: labels, probes, values) is snake_case and, unless
// o.undocumented, documented in the section; nothing is null (an empty
// list is []); durations are strings time.ParseDuration reads; times are
// RFC 3339; and '<', '>' and '&' are not escaped.
func checkJSON(t *testing.T, what string, data []byte, o jsonCheck) {
	t.Helper()
	if !o.undocumented {
		o.fields = specJSONFields(t)
	}
	errs := o.check(data)
	for _, err := range errs {
		t.Errorf("%s: %v", what, err)
	}
	if len(errs) > 0 && testing.Verbose() {
		t.Logf("%s:\n%s", what, data)
	}
}

// jsonCheck checks one output by the rules.
type jsonCheck struct {
	fields       map[string]bool // the documented keys
	undocumented bool            // keys are the code's own (a log record's attributes): not held to fields
	namesAtTop   bool            // the top level is an object whose keys are names (show rules: pools)
	lines        bool            // a value per line
}

// nameMaps are the keys whose object values have names for keys: labels
// (Prometheus' label names), probes (instances) and values (metrics, in
// simulate's lines and the log's decisions).
var nameMaps = map[string]bool{"labels": true, "probes": true, "values": true}

// durationKeys and timeKeys are the keys of durations and times, in
// outputs and log records.
var (
	durationKeys = map[string]bool{"for": true, "t": true, "elapsed": true, "took": true, "after": true, "led_for": true, "in": true, "retry_in": true,
		"age": true, "waits": true, "scale_out_cooldown_left": true, "scale_in_cooldown_left": true}
	timeKeys = map[string]bool{"time": true, "started": true, "next": true, "pending_since": true, "start_after": true,
		"scale_out_cooldown_until": true, "scale_in_cooldown_until": true, "from": true, "to": true}
	looksLikeTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d`)
)

func (o jsonCheck) check(data []byte) (errs []error) {
	for _, esc := range []string{`\u003c`, `\u003e`, `\u0026`} {
		if bytes.Contains(data, []byte(esc)) {
			errs = append(errs, fmt.Errorf("%s: '<', '>' and '&' are to be written as themselves", esc))
		}
	}
	if o.lines && bytes.Count(data, []byte("\n")) != bytes.Count(bytes.TrimSpace(data), []byte("\n"))+1 {
		errs = append(errs, errors.New("not one value per line"))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n := 0
	for ; ; n++ {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			return append(errs, err)
		}
		o.walk(v, "", o.namesAtTop, &errs)
	}
	if n == 0 || n > 1 && !o.lines {
		errs = append(errs, fmt.Errorf("%d JSON values, want one", n))
	}
	return errs
}

func (o jsonCheck) walk(v any, path string, names bool, errs *[]error) {
	fail := func(format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("%s: %s", cmp.Or(path, "the top level"), fmt.Sprintf(format, args...)))
	}
	switch v := v.(type) {
	case nil:
		fail("null: a list with nothing is [], an optional field with nothing is left out")
	case []any:
		for i, e := range v {
			o.walk(e, fmt.Sprintf("%s[%d]", path, i), false, errs)
		}
	case map[string]any:
		for k, e := range v {
			p := path + "." + k
			if !names {
				switch {
				case !jsonout.SnakeCase(k):
					*errs = append(*errs, fmt.Errorf("%s: not snake_case", p))
				case !o.undocumented && !o.fields[k]:
					*errs = append(*errs, fmt.Errorf("%s: not documented in spec/language.md's JSON output", p))
				}
				s, isString := e.(string)
				if _, err := time.ParseDuration(s); durationKeys[k] && (!isString || err != nil) {
					*errs = append(*errs, fmt.Errorf("%s: %v is not a duration such as \"1m30s\"", p, e))
				}
				if _, err := time.Parse(time.RFC3339, s); timeKeys[k] && (!isString || err != nil) {
					*errs = append(*errs, fmt.Errorf("%s: %v is not an RFC 3339 time", p, e))
				}
			}
			_, isObject := e.(map[string]any)
			o.walk(e, p, !names && nameMaps[k] && isObject, errs)
		}
	case string:
		if _, err := time.Parse(time.RFC3339, v); looksLikeTime.MatchString(v) && err != nil {
			fail("%q looks like a time, but is not RFC 3339", v)
		}
	}
}

// specJSONFields returns the field names documented in the JSON output
// section of spec/language.md: the first column of its tables.
func specJSONFields(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("../../spec/language.md")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	start := strings.Index(src, "\n### JSON output\n")
	if start < 0 {
		t.Fatal("spec/language.md: no ### JSON output section")
	}
	section := src[start+1:]
	if end := regexp.MustCompile(`\n##+ `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}
	fields := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\|").FindAllStringSubmatch(section, -1) {
		fields[m[1]] = true
	}
	if len(fields) < 40 {
		t.Fatalf("spec/language.md's JSON output documents %d fields; the tables are not where the test looks", len(fields))
	}
	return fields
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s, %s, %v\n%s", url, resp.Status, resp.Header.Get("Content-Type"), err, body)
	}
	return body
}
