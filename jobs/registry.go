package jobs

import (
	"sort"
)

// Type is a registered job type. New returns its Spec with defaults set;
// the Spec's `cfg` field tags declare the keys the type accepts (decode.go).
type Type struct {
	New func() Spec
	// System types are built by checker itself, never from a section.
	System bool
}

// registry maps a type name (the TYPE of [TYPE:NAME]) to its Type. Each
// type's file adds itself in an init function; validation takes the valid
// names from here, so there is no second list to drift.
var registry = map[string]Type{}

func register(name string, t Type) {
	if _, dup := registry[name]; dup {
		panic("jobs: type registered twice: " + name)
	}
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
