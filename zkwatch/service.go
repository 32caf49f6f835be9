package zkwatch

import (
	"iter"
	"slices"
	"strings"
)

// This file holds what the watcher knows of one service's children. A
// sync keeps every instance of every service in memory, so each is held
// once, in the slice that is also published, with no per-child map or
// struct beside it.

type service struct {
	spec         ServiceSpec
	full         string
	discoveredBy string
	exists       bool
	denied       bool // an ACL refuses the service path itself
	// rewatch is set when a listing set an exists watch on the path: the
	// next listing sets the path's persistent watch again first.
	rewatch bool

	// instances are the children whose payload decoded, sorted by ID (the
	// child's name). The slice is what ServiceState.Instances publishes, so
	// it is never changed in place: update builds a new one.
	instances []Instance
	// mzxids[i] is the Mzxid of the version of instances[i] that was read.
	mzxids []int64
	// unserved holds the children that were read but are not served (the
	// payload does not decode, or an ACL refused the read), by name: the
	// Mzxid read, or 0 when refused (every znode's Mzxid is positive, so 0
	// tells the two apart). Nil while there are none.
	unserved map[string]int64

	// unpublished is set while the service differs from what was last
	// published of it (a new service always does). A re-listing that
	// finds what is already known, as the child event after a deletion
	// that the instance's own watch already published does, publishes
	// nothing.
	unpublished bool
}

// nodeRead is the outcome of reading one instance znode.
type nodeRead struct {
	name  string // the child's name
	mzxid int64  // 0 when an ACL refused the read
	inst  Instance
	err   error // why the child is not served: its payload, or errAccessDenied
}

// version returns the Mzxid read of child name; ok is false when the
// service has no such child.
func (s *service) version(name string) (mzxid int64, ok bool) {
	if i, found := s.find(name); found {
		return s.mzxids[i], true
	}
	mzxid, ok = s.unserved[name]
	return mzxid, ok
}

// find returns where instance name is, or would be, in s.instances.
func (s *service) find(name string) (int, bool) {
	return slices.BinarySearchFunc(s.instances, name, func(in Instance, name string) int {
		return strings.Compare(in.ID, name)
	})
}

// children yields every child read, served or not, with its Mzxid.
func (s *service) children() iter.Seq2[string, int64] {
	return func(yield func(string, int64) bool) {
		for i, in := range s.instances {
			if !yield(in.ID, s.mzxids[i]) {
				return
			}
		}
		for name, mzxid := range s.unserved {
			if !yield(name, mzxid) {
				return
			}
		}
	}
}

// childCount is the number of children read, served or not.
func (s *service) childCount() int { return len(s.instances) + len(s.unserved) }

// clearChildren forgets every child.
func (s *service) clearChildren() {
	if s.childCount() > 0 {
		s.unpublished = true
	}
	s.instances, s.mzxids, s.unserved = nil, nil, nil
}

// setPath records whether the service's path exists and whether an ACL
// refuses it.
func (s *service) setPath(exists, denied bool) {
	if exists != s.exists || denied != s.denied {
		s.unpublished = true
	}
	s.exists, s.denied = exists, denied
}

// state is the service as published. Its Instances is the service's own
// slice, shared: update never changes a slice it has handed out.
func (s *service) state() ServiceState {
	st := ServiceState{
		ServiceSpec:  s.spec,
		DiscoveredBy: s.discoveredBy,
		Exists:       s.exists,
		Instances:    s.instances,
		AccessDenied: s.denied,
	}
	// unserved is empty for nearly every service, and small otherwise.
	for _, mzxid := range s.unserved {
		if mzxid == 0 {
			st.Denied++
		} else {
			st.Invalid++
		}
	}
	if st.Instances == nil {
		st.Instances = []Instance{}
	}
	return st
}

// update applies one pass over the service's children: the names of those
// that left, and what was read of those that are new or changed. A name
// appears at most once in a pass; update reorders reads. The instance list
// is rebuilt once, into a new slice of the exact size, since the current
// one may have been published; a change costs a walk of the list, not a
// sort of it.
func (s *service) update(gone []string, reads []nodeRead) {
	// A child read again and still not served, at the version already
	// known (a refused one at its periodic ACL re-check), changes nothing.
	reads = slices.DeleteFunc(reads, func(r nodeRead) bool {
		m, known := s.unserved[r.name]
		return r.err != nil && known && m == r.mzxid && !slices.Contains(gone, r.name)
	})
	if len(gone) == 0 && len(reads) == 0 {
		return
	}
	s.unpublished = true
	for _, name := range gone {
		delete(s.unserved, name)
	}
	served := 0
	for _, r := range reads {
		if r.err != nil {
			if s.unserved == nil {
				s.unserved = make(map[string]int64)
			}
			s.unserved[r.name] = r.mzxid
			continue
		}
		delete(s.unserved, r.name)
		served++
	}
	if len(s.unserved) == 0 {
		s.unserved = nil
	}
	slices.SortFunc(reads, func(a, b nodeRead) int { return strings.Compare(a.name, b.name) })

	// The names whose current instance goes, sorted; none on a first
	// listing, which is most of a sync.
	var replaced []string
	size := len(s.instances) + served
	if len(s.instances) > 0 {
		replaced = make([]string, 0, len(gone)+len(reads))
		replaced = append(replaced, gone...)
		for _, r := range reads {
			replaced = append(replaced, r.name)
		}
		slices.Sort(replaced)
		replaced = slices.Compact(replaced)
		for _, name := range replaced {
			if _, found := s.find(name); found {
				size--
			}
		}
	}
	instances := make([]Instance, 0, size)
	mzxids := make([]int64, 0, size)
	// Both lists are sorted by name: one walk drops the replaced instances
	// and merges in the served reads.
	next := 0 // into replaced
	for i, in := range s.instances {
		for next < len(replaced) && replaced[next] < in.ID {
			next++
		}
		if next < len(replaced) && replaced[next] == in.ID {
			continue
		}
		for len(reads) > 0 && reads[0].name < in.ID {
			if reads[0].err == nil {
				instances, mzxids = append(instances, reads[0].inst), append(mzxids, reads[0].mzxid)
			}
			reads = reads[1:]
		}
		instances, mzxids = append(instances, in), append(mzxids, s.mzxids[i])
	}
	for _, r := range reads {
		if r.err == nil {
			instances, mzxids = append(instances, r.inst), append(mzxids, r.mzxid)
		}
	}
	s.instances, s.mzxids = instances, mzxids
}
