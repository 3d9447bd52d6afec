package kube2sky

import (
	"hash/maphash"
	"maps"
	"slices"
	"testing"
)

// recA is a value as kube2sky writes it.
const recA = `{"host":"10.0.0.1","priority":10,"weight":10,"ttl":30}`

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
		{"a value etcd holds in another encoding is adopted", Records{"/a": recA}, Records{"/a": `{"ttl":30, "host":"10.0.0.1","priority":10,"weight":10}`}, Records{}, nil},
		{"a value etcd holds that serves something else is put", Records{"/a": recA}, Records{"/a": `{"host":"10.0.0.1"}`}, Records{"/a": recA}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newOwned(namer, maphash.MakeSeed())
			held := func(k string) digest {
				if v, ok := tc.current[k]; ok {
					return o.listedDigest(v)
				}
				return unknownDigest
			}
			p := planChanges(tc.desired, slices.Collect(maps.Keys(tc.current)), held, o.digestOf)
			if !maps.Equal(p.Puts, tc.puts) || !slices.Equal(p.Deletes, tc.deletes) {
				t.Errorf("puts %v deletes %v, want puts %v deletes %v", p.Puts, p.Deletes, tc.puts, tc.deletes)
			}
			if p.Empty() != (len(tc.puts) == 0 && len(tc.deletes) == 0) {
				t.Errorf("Empty() = %v", p.Empty())
			}
		})
	}
}

// A value in etcd has the digest of the value kube2sky wants when it serves
// the same record: the same bytes, or another writer's encoding of it.
func TestListedDigest(t *testing.T) {
	tests := []struct {
		name   string
		inEtcd string
		same   bool
	}{
		{"the same bytes", recA, true},
		{"fields in another order", `{"ttl":30,"weight":10,"priority":10,"host":"10.0.0.1"}`, true},
		{"spacing", "{ \"host\": \"10.0.0.1\",\n \"priority\": 10, \"weight\": 10, \"ttl\": 30 }", true},
		{"a field skydns ignores", `{"host":"10.0.0.1","priority":10,"weight":10,"ttl":30,"owner":"me"}`, true},
		{"zero fields spelled out", `{"host":"10.0.0.1","port":0,"priority":10,"weight":10,"ttl":30,"mail":false}`, true},
		{"another TTL", `{"host":"10.0.0.1","priority":10,"weight":10,"ttl":60}`, false},
		{"another host", `{"host":"10.0.0.2","priority":10,"weight":10,"ttl":30}`, false},
		{"a field kube2sky does not write", `{"host":"10.0.0.1","priority":10,"weight":10,"ttl":30,"group":"g"}`, false},
		{"not JSON", `{"host":`, false},
		{"not a servable record", `{"host":"10.0.0.1 ","priority":10,"weight":10,"ttl":30}`, false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newOwned(namer, maphash.MakeSeed())
			if got := o.listedDigest(tc.inEtcd) == o.digestOf(recA); got != tc.same {
				t.Errorf("%q has the digest of %q: %v, want %v", tc.inEtcd, recA, got, tc.same)
			}
		})
	}
}
