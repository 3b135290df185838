package jobs

import (
	"sort"
	"strings"
	"sync"
)

// Type is a registered job type. New returns its Spec with defaults set;
// the Spec's `cfg` field tags declare the keys the type accepts (decode.go).
type Type struct {
	New func() Spec
	// System types are built by checker itself, never from a section.
	System bool

	keys *typeKeys // worked out on first use, shared by every section
}

// typeKeys is what decoding needs to know of a type's keys, computed once
// per type rather than once per section (a settings file may hold 100,000).
type typeKeys struct {
	once     sync.Once
	fields   []field
	accepted map[string]bool
	list     string // the accepted keys, for messages
}

func (t Type) keyInfo() *typeKeys {
	t.keys.once.Do(func() {
		probe := t.New()
		t.keys.fields = fieldsOf(probe)
		keys := acceptedKeys(probe)
		t.keys.accepted = make(map[string]bool, len(keys))
		for _, k := range keys {
			t.keys.accepted[k] = true
		}
		t.keys.list = strings.Join(keys, ", ")
	})
	return t.keys
}

// registry maps a type name (the TYPE of [TYPE:NAME]) to its Type. Each
// type's file adds itself in an init function; validation takes the valid
// names from here, so there is no second list to drift.
var registry = map[string]Type{}

func register(name string, t Type) {
	if _, dup := registry[name]; dup {
		panic("jobs: type registered twice: " + name)
	}
	t.keys = &typeKeys{}
	registry[name] = t
}

// TypeNames returns the job types a section may name, sorted.
func TypeNames() []string {
	var names []string
	for n, t := range registry {
		if !t.System {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
