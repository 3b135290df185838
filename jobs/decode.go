package jobs

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"checker/config"
)

// KeyError is a problem with one key of a section.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

type keyErrors []*KeyError

func (ke *keyErrors) add(key string, err error) { *ke = append(*ke, &KeyError{Key: key, Err: err}) }

// field is one `cfg`-tagged field of a Spec.
//
// Tag syntax: `cfg:"key"`, `cfg:"key,required"`, `cfg:"key,list=keys"`.
// With list=keys the section may instead give a comma list under keys, and
// one job is spawned per entry.
type field struct {
	key      string
	list     string
	required bool
	index    int
}

func fieldsOf(spec Spec) []field {
	t := reflect.TypeOf(spec).Elem()
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		tag, ok := t.Field(i).Tag.Lookup("cfg")
		if !ok {
			continue
		}
		parts := strings.Split(tag, ",")
		f := field{key: parts[0], index: i}
		for _, p := range parts[1:] {
			switch {
			case p == "required":
				f.required = true
			case strings.HasPrefix(p, "list="):
				f.list = strings.TrimPrefix(p, "list=")
			}
		}
		fs = append(fs, f)
	}
	return fs
}

// acceptedKeys lists every key a type's section accepts.
func acceptedKeys(spec Spec) []string {
	keys := append([]string(nil), config.CommonJobKeys...)
	for _, f := range fieldsOf(spec) {
		keys = append(keys, f.key)
		if f.list != "" {
			keys = append(keys, f.list)
		}
	}
	sort.Strings(keys)
	return keys
}

// decodeSpecs decodes a section into one Spec per entry of its list key (or
// one Spec without a list key). It returns the specs, the list entries
// ("" when not spawned) and every key problem.
func decodeSpecs(t Type, sec config.Section) ([]Spec, []string, keyErrors) {
	var errs keyErrors
	info := t.keyInfo()
	fields := info.fields
	for _, k := range sec.Keys() {
		if !info.accepted[k] {
			errs.add(k, fmt.Errorf("unknown key (this type takes: %s)", info.list))
		}
	}

	// Find the list field, if the section uses it.
	var listField *field
	var entries []string
	for i := range fields {
		f := &fields[i]
		if f.list == "" {
			continue
		}
		if v, ok := sec.Lookup(f.list); ok {
			if sec.Has(f.key) {
				errs.add(f.list, fmt.Errorf("set either %s or %s, not both", f.key, f.list))
			}
			entries = config.SplitList(v)
			if len(entries) == 0 {
				errs.add(f.list, errors.New("empty list"))
			}
			seen := map[string]bool{}
			for _, e := range entries {
				if k := strings.ToLower(e); seen[k] {
					errs.add(f.list, fmt.Errorf("list entry %q appears twice", e))
				} else {
					seen[k] = true
				}
			}
			listField = f
		}
	}
	if listField == nil {
		entries = []string{""}
	}

	var specs []Spec
	for _, entry := range entries {
		spec := t.New()
		v := reflect.ValueOf(spec).Elem()
		for _, f := range fields {
			raw, ok := sec.Lookup(f.key)
			if listField != nil && f.index == listField.index {
				raw, ok = entry, true
			}
			if !ok {
				if f.required {
					name := f.key
					if f.list != "" {
						name = f.key + " (or " + f.list + ")"
					}
					errs.add(f.key, fmt.Errorf("missing required key %s", name))
				}
				continue
			}
			if err := setField(v.Field(f.index), raw); err != nil {
				errs.add(f.key, err)
			}
		}
		specs = append(specs, spec)
		if len(errs) > 0 {
			// The same problems would repeat for every entry.
			break
		}
	}
	if listField == nil {
		entries = nil
	}
	return specs, entries, errs
}

var durationType = reflect.TypeOf(time.Duration(0))

func setField(v reflect.Value, raw string) error {
	raw = strings.TrimSpace(raw)
	switch {
	case v.Type() == durationType:
		d, err := config.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Bool:
		b, err := config.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := config.ParsePositiveInt(raw, 0)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		v.Set(reflect.ValueOf(config.SplitList(raw)))
	default:
		return fmt.Errorf("internal: unsupported field type %s", v.Type())
	}
	return nil
}
