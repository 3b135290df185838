package jobs

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"checker/config"
	"checker/notify"
)

// Load builds every job the settings describe: the sections' jobs, spawned
// per list entry, and the system jobs. It returns all jobs it could build and
// every problem found, each with its section and key.
func Load(s *config.Settings) ([]*Job, config.Problems) {
	var (
		jobs     []*Job
		problems config.Problems
	)
	prob := func(sec config.Section, key string, err error) {
		// A value that is invalid because of what looks like an inline
		// comment says so (settings.cfg has none).
		msg := err.Error()
		if key != "" {
			msg += config.InlineCommentHint(sec.Get(key))
		}
		problems = append(problems, config.Problem{File: s.File, Line: sec.KeyLine(key), Section: sec.Name, Key: key, Msg: msg})
	}
	for _, sec := range s.Jobs {
		typ, name, _ := strings.Cut(sec.Name, ":")
		typ = strings.ToLower(strings.TrimSpace(typ))
		t, ok := registry[typ]
		if !ok || t.System {
			prob(sec, "", fmt.Errorf("unknown job type %q (known types: %s)", typ, strings.Join(TypeNames(), ", ")))
			continue
		}
		if strings.TrimSpace(name) == "" {
			prob(sec, "", errors.New("job section needs a name: [TYPE:NAME]"))
			continue
		}
		built, errs := buildSection(t, typ, sec, sec.Name, s)
		for _, e := range errs {
			prob(sec, e.Key, e.Err)
		}
		jobs = append(jobs, built...)
	}
	for _, b := range systemBuilders {
		built, errs := b(s)
		jobs = append(jobs, built...)
		problems = append(problems, errs...)
	}

	// Names must be unique, also ignoring case: they key the state file.
	seen := map[string]string{}
	var unique []*Job
	for _, j := range jobs {
		k := strings.ToLower(j.Name)
		if first, dup := seen[k]; dup {
			problems = append(problems, config.Problem{File: s.File, Section: j.Name, Msg: fmt.Sprintf("duplicate job name (same as %q)", first)})
			continue
		}
		seen[k] = j.Name
		unique = append(unique, j)
	}
	sort.SliceStable(problems, func(a, b int) bool { return problems[a].Line < problems[b].Line })
	return unique, problems
}

// systemBuilders add the jobs that need no section (self-check, peers,
// heartbeat services); each such file appends its builder in init.
var systemBuilders []func(*config.Settings) ([]*Job, config.Problems)

func init() { systemBuilders = append(systemBuilders, checkDestinations) }

// checkDestinations checks [channels] without connecting anywhere (a known
// service, the parts its URL needs; no secret in any message), and that
// every name in alertcontact and notify_to that is not a mail address is a
// channel of [channels]. It builds no job.
func checkDestinations(s *config.Settings) ([]*Job, config.Problems) {
	var problems config.Problems
	channels := map[string]bool{}
	var names []string
	for _, ch := range s.Channels {
		name := strings.ToLower(strings.TrimSpace(ch.Name))
		channels[name] = true
		names = append(names, name)
		if err := notify.CheckChannel(ch.Name, ch.URL); err != nil {
			problems = append(problems, config.Problem{File: s.File, Line: ch.Line, Section: "channels", Key: ch.Name, Msg: err.Error()})
		}
	}
	sort.Strings(names)
	known := "no channels are configured in [channels]"
	if len(names) > 0 {
		known = "channels: " + strings.Join(names, ", ")
	}
	check := func(list []string, at func(msg string)) {
		for _, to := range list {
			if !IsAddress(to) && destinationSyntax(to) == nil && !channels[strings.ToLower(to)] {
				at(fmt.Sprintf("%q is neither a mail address nor a channel of [channels] (%s)", to, known))
			}
		}
	}
	check(s.General.AlertContact, func(msg string) {
		problems = append(problems, config.Problem{File: s.File, Line: s.KeyLine("general", "alertcontact"), Section: "general", Key: "alertcontact", Msg: msg})
	})
	sections := append([]config.Section{s.Heartbeat.Section}, s.Jobs...)
	for _, sec := range sections {
		v, ok := sec.Lookup("notify_to")
		if !ok {
			continue
		}
		line := sec.KeyLine("notify_to")
		check(config.SplitList(v), func(msg string) {
			problems = append(problems, config.Problem{File: s.File, Line: line, Section: sec.Name, Key: "notify_to", Msg: msg})
		})
	}
	return nil, problems
}

// buildSection decodes sec as type t and returns its job, or one job per
// list entry named NAME[entry].
func buildSection(t Type, typ string, sec config.Section, name string, s *config.Settings) ([]*Job, keyErrors) {
	var errs keyErrors
	c := decodeCommon(sec, s.General.Timeout, DefaultEvery, DefaultNotify, &errs)
	specs, entries, kerrs := decodeSpecs(t, sec)
	errs = append(errs, kerrs...)
	if len(errs) > 0 {
		return nil, errs
	}
	var out []*Job
	for i, spec := range specs {
		if sa, ok := spec.(sectionAware); ok {
			sa.fromSection(strings.TrimSpace(name[strings.IndexByte(name, ':')+1:]), s)
		}
		if err := spec.Validate(); err != nil {
			var ke *KeyError
			if errors.As(err, &ke) {
				errs = append(errs, ke)
			} else {
				errs.add("", err)
			}
			return nil, errs
		}
		jobName := name
		if entries != nil {
			jobName = fmt.Sprintf("%s[%s]", name, entries[i]) // entries are unique (decodeSpecs)
		}
		j := &Job{Name: jobName, Type: typ, Target: spec.Target(), Every: c.Every, Policy: c.Policy, Timeout: c.Timeout, Spec: spec}
		if a, ok := spec.(policyAdjuster); ok {
			a.adjustPolicy(&j.Policy)
		}
		out = append(out, j)
	}
	return out, errs
}

// sectionAware lets a type take defaults from the job's NAME and the
// settings before it is validated (a heartbeat job's service and thresholds).
type sectionAware interface {
	fromSection(name string, s *config.Settings)
}

// policyAdjuster lets a type change the policy its settings imply (the
// heartbeat type's fail_on decides whether WARNING is a failure).
type policyAdjuster interface{ adjustPolicy(*Policy) }

// Select returns the jobs matching the given names or patterns (see
// MatchName), in the order of all. Names that match no job are returned as
// an error naming them.
func Select(all []*Job, names []string) ([]*Job, error) {
	var out []*Job
	var unknown []string
	picked := map[*Job]bool{}
	for _, n := range names {
		found := false
		for _, j := range all {
			if MatchName(n, j.Name) {
				found = true
				picked[j] = true
			}
		}
		if !found {
			unknown = append(unknown, n)
		}
	}
	for _, j := range all {
		if picked[j] {
			out = append(out, j)
		}
	}
	if len(unknown) > 0 {
		return out, fmt.Errorf("no such job: %s (see checker list)", strings.Join(unknown, ", "))
	}
	return out, nil
}

// globBrackets makes brackets and backslashes literal in a path.Match
// pattern.
var globBrackets = strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`)

// MatchName reports whether a job name matches pattern, ignoring case. A
// pattern matches a job by its whole name (http:web), by a glob over the
// whole name (http:*, *:db*), or — without a ':' — by the name after the
// type (web matches http:web and tcp:web); a section with a list matches
// every job spawned from it (tcp:dns matches tcp:dns[a:53]). Globs have
// '*' and '?' only: brackets are part of job names (tcp:dns[a:53]), so
// they match themselves ('tcp:dns[*]' matches every entry of the list, and
// 'a[1]' the job a[1], never a1).
func MatchName(pattern, job string) bool {
	p, j := strings.ToLower(pattern), strings.ToLower(job)
	base := j
	if i := strings.IndexByte(j, '['); i > 0 && strings.HasSuffix(j, "]") {
		base = j[:i] // tcp:dns[a:53] → tcp:dns
	}
	candidates := []string{j, base}
	head, _, _ := strings.Cut(p, "[")
	typ, _, typed := strings.Cut(head, ":")
	_, known := registry[typ]
	if !typed || !known && !strings.ContainsAny(typ, "*?") {
		// No type: a bare name, which may hold ':' (b:53 names tcp:b:53,
		// dns[a:53] the entry of a list).
		if _, name, ok := strings.Cut(j, ":"); ok {
			candidates = append(candidates, name) // dns[a:53]
		}
		if _, name, ok := strings.Cut(base, ":"); ok {
			candidates = append(candidates, name) // dns
		}
	}
	glob := strings.ContainsAny(p, "*?")
	if glob {
		p = globBrackets.Replace(p)
	}
	for _, c := range candidates {
		if c == p {
			return true
		}
		if glob {
			if ok, err := path.Match(p, c); err == nil && ok {
				return true
			}
		}
	}
	return false
}
