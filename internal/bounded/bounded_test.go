package bounded

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestEvictKeepsTheBoundAndStaleEntriesGoFirst(t *testing.T) {
	m := New[string, int](100, Evict)
	for i := range 1000 {
		m.Put(strconv.Itoa(i), i, nil)
		if n := m.Len(); n > 100 {
			t.Fatalf("after %d puts: %d entries, bound 100", i+1, n)
		}
	}
	if v, ok := m.Get("999"); !ok || v != 999 {
		t.Fatalf("the latest entry: %d %v", v, ok)
	}

	// Full of stale entries but one: the sweep drops them all and keeps it.
	m = New[string, int](100, Evict)
	for i := range 99 {
		m.Put(strconv.Itoa(i), -1, nil)
	}
	m.Put("live", 1, nil)
	stale := func(v int) bool { return v < 0 }
	if !m.Put("new", 2, stale) {
		t.Fatal("not stored after the sweep")
	}
	if _, ok := m.Get("live"); !ok || m.Len() != 2 {
		t.Fatalf("after the sweep: live kept %v, %d entries, want 2", ok, m.Len())
	}
}

func TestRefuseKeepsLiveEntries(t *testing.T) {
	m := New[int, bool](10, Refuse)
	for i := range 10 {
		if !m.Put(i, true, nil) {
			t.Fatalf("entry %d refused below the bound", i)
		}
	}
	if m.Put(10, true, func(live bool) bool { return !live }) {
		t.Fatal("a full map of live entries stored another")
	}
	if !m.Put(3, false, nil) {
		t.Fatal("replacing an entry of a full map was refused")
	}
	if !m.Put(11, true, func(live bool) bool { return !live }) {
		t.Fatal("a stale entry was not swept to make room")
	}
	if _, ok := m.Get(3); ok || m.Len() != 10 {
		t.Fatalf("after the sweep: stale kept %v, %d entries", ok, m.Len())
	}
}

func TestAddStoresOnceUntilStale(t *testing.T) {
	m := New[string, int](10, Evict)
	stale := func(v int) bool { return v < 0 }
	if !m.Add("k", 1, stale) || m.Add("k", 2, stale) {
		t.Fatal("a live entry was added twice")
	}
	m.Put("k", -1, nil)
	if !m.Add("k", 3, stale) {
		t.Fatal("a stale entry blocked a new one")
	}
	if v, _ := m.Get("k"); v != 3 {
		t.Fatalf("got %d, want 3", v)
	}

	// Of callers racing with one key, exactly one wins.
	m = New[string, int](10, Evict)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.Add("race", 1, stale) {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d callers added the same key", wins.Load())
	}
}

func TestDeleteAndGet(t *testing.T) {
	m := New[string, string](0, Evict) // a bound below 1 is 1
	m.Put("a", "x", nil)
	m.Put("b", "y", nil)
	if m.Len() != 1 {
		t.Fatalf("%d entries, bound 1", m.Len())
	}
	m.Delete("b")
	if _, ok := m.Get("b"); ok || m.Len() != 0 {
		t.Fatal("delete kept the entry")
	}
}

func TestGetDoesNotAllocate(t *testing.T) {
	m := New[[32]byte, int](10, Evict)
	var k [32]byte
	m.Put(k, 1, nil)
	if n := testing.AllocsPerRun(100, func() { m.Get(k) }); n != 0 {
		t.Fatalf("Get: %v allocations", n)
	}
}
