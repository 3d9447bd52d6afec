package kube2sky

import (
	"maps"
	"slices"
	"testing"
)

func TestPlanChanges(t *testing.T) {
	tests := []struct {
		name             string
		desired, current Records
		puts             Records
		deletes          []string
	}{
		{"nothing either side", Records{}, Records{}, Records{}, nil},
		{"no change writes nothing", Records{"/a": "1", "/b": "2"}, Records{"/a": "1", "/b": "2"}, Records{}, nil},
		{"new keys are put", Records{"/a": "1"}, Records{}, Records{"/a": "1"}, nil},
		{"changed values are put", Records{"/a": "2"}, Records{"/a": "1"}, Records{"/a": "2"}, nil},
		{"an empty value is still a value", Records{"/a": ""}, Records{}, Records{"/a": ""}, nil},
		{"keys no longer called for are deleted, sorted", Records{}, Records{"/c": "1", "/a": "1", "/b": "1"}, Records{}, []string{"/a", "/b", "/c"}},
		{"an owner's whole change at once", Records{"/new": "1", "/same": "1"}, Records{"/old": "1", "/same": "1"}, Records{"/new": "1"}, []string{"/old"}},
		{"a key taken over from another owner with the same value", Records{"/ptr": "v"}, Records{"/ptr": "v"}, Records{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planChanges(tc.desired, tc.current)
			if !maps.Equal(p.Puts, tc.puts) || !slices.Equal(p.Deletes, tc.deletes) {
				t.Errorf("puts %v deletes %v, want puts %v deletes %v", p.Puts, p.Deletes, tc.puts, tc.deletes)
			}
			if p.Empty() != (len(tc.puts) == 0 && len(tc.deletes) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
}
