package dnsserver

import (
	"hash/maphash"
	"iter"
	"maps"
)

// indexShards is how many maps an index is split into. With 10,000
// services a shard holds about 40 of them, so a one-service update copies
// that many entries per index instead of every one.
const indexShards = 256

// index is an immutable map from names to V, split into shards so that a
// snapshot derived from another copies only the shards its update touches:
// the cost of a change stays flat as the number of services grows. The
// zero value is not usable; newIndex makes one.
type index[V any] struct {
	seed   maphash.Seed
	shards [indexShards]map[string]V // nil for a shard with no entries
	n      int
}

func newIndex[V any]() *index[V] {
	return &index[V]{seed: maphash.MakeSeed()}
}

func (x *index[V]) get(k string) V {
	return x.shards[maphash.String(x.seed, k)%indexShards][k]
}

// getBytes is get for a name the fast path holds as bytes; it does not
// allocate.
func (x *index[V]) getBytes(k []byte) V {
	return x.shards[maphash.Bytes(x.seed, k)%indexShards][string(k)]
}

func (x *index[V]) len() int { return x.n }

// all yields every entry, in no particular order.
func (x *index[V]) all() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		for _, m := range x.shards {
			for k, v := range m {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// edit starts a new version of x; x itself is never changed.
func (x *index[V]) edit() *indexEdit[V] {
	return &indexEdit[V]{index: x}
}

// indexEdit builds a new version of an index. It shares the version it
// started from until its first write, and every shard until it first
// writes to that shard, so an edit that leaves an index alone costs
// nothing.
type indexEdit[V any] struct {
	*index[V]
	copied bool // index is the edit's own copy
	owned  [indexShards]bool
}

func (e *indexEdit[V]) shard(k string) map[string]V {
	if !e.copied {
		next := *e.index
		e.index, e.copied = &next, true
	}
	i := maphash.String(e.seed, k) % indexShards
	if !e.owned[i] {
		if e.shards[i] == nil {
			e.shards[i] = map[string]V{}
		} else {
			e.shards[i] = maps.Clone(e.shards[i])
		}
		e.owned[i] = true
	}
	return e.shards[i]
}

func (e *indexEdit[V]) set(k string, v V) {
	m := e.shard(k)
	if _, had := m[k]; !had {
		e.n++
	}
	m[k] = v
}

func (e *indexEdit[V]) del(k string) {
	i := maphash.String(e.seed, k) % indexShards
	if _, had := e.shards[i][k]; !had {
		return
	}
	delete(e.shard(k), k)
	e.n--
}

// done returns the new version. The edit must not be used after it.
func (e *indexEdit[V]) done() *index[V] { return e.index }
