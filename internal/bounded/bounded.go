// Package bounded is a map with a bound on its length, safe for concurrent
// use: the one shape of every cache and memory in this module that anyone
// on the internet can feed. A flood of distinct keys makes it evict (or,
// where the user asks, refuse), never grow past the bound.
//
// It knows nothing of time: each user brings its own policy on top, by
// saying which entries are stale when the map is full (an expired token, a
// session that has ended) and whether a full map evicts or refuses.
package bounded

import "sync"

// Policy says what a full map does with a new entry once its stale entries
// are gone and it is still full.
type Policy int

const (
	// Evict drops arbitrary entries (Go's map order is random, so which
	// ones cannot be steered from outside) until fewer than three quarters
	// of the bound remain, then stores the new one. For caches: what is dropped is
	// computed again.
	Evict Policy = iota
	// Refuse keeps every entry and does not store the new one. For
	// memories whose entries must not be dropped early.
	Refuse
)

// Map maps keys to values, holding at most its bound.
type Map[K comparable, V any] struct {
	mu      sync.RWMutex
	entries map[K]V
	max     int
	policy  Policy
}

// New returns an empty Map of at most bound entries (at least 1).
func New[K comparable, V any](bound int, policy Policy) *Map[K, V] {
	return &Map[K, V]{entries: make(map[K]V), max: max(bound, 1), policy: policy}
}

// Get returns the value stored under k.
func (m *Map[K, V]) Get(k K) (V, bool) {
	m.mu.RLock()
	v, ok := m.entries[k]
	m.mu.RUnlock()
	return v, ok
}

// Put stores v under k, replacing what k held. When the map is full it
// first makes room (see room); under Refuse a map full of live entries
// does not store v. It reports whether v was stored.
func (m *Map[K, V]) Put(k K, v V, stale func(V) bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.put(k, v, stale)
}

// Add stores v under k unless k holds an entry that stale does not report
// (a live one), and reports whether it stored v. Check and store are one
// step: of callers racing with one key, exactly one gets true.
func (m *Map[K, V]) Add(k K, v V, stale func(V) bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.entries[k]; ok && (stale == nil || !stale(old)) {
		return false
	}
	return m.put(k, v, stale)
}

// put is Put with m.mu held.
func (m *Map[K, V]) put(k K, v V, stale func(V) bool) bool {
	if _, ok := m.entries[k]; !ok && len(m.entries) >= m.max && !m.room(stale) {
		return false
	}
	m.entries[k] = v
	return true
}

// room makes room in a full map: it drops every entry stale reports (nil
// reports none), then, under Evict, arbitrary entries until fewer than
// three quarters of the bound remain. It reports whether there is room for
// one more.
func (m *Map[K, V]) room(stale func(V) bool) bool {
	if stale != nil {
		for k, v := range m.entries {
			if stale(v) {
				delete(m.entries, k)
			}
		}
	}
	if m.policy == Evict {
		for k := range m.entries {
			if len(m.entries) < m.max*3/4 {
				break
			}
			delete(m.entries, k)
		}
	}
	return len(m.entries) < m.max
}

// Delete drops what k holds.
func (m *Map[K, V]) Delete(k K) {
	m.mu.Lock()
	delete(m.entries, k)
	m.mu.Unlock()
}

// Len returns how many entries the map holds.
func (m *Map[K, V]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.entries)
}

// Cap returns the bound: the most entries the map holds.
func (m *Map[K, V]) Cap() int { return m.max }
