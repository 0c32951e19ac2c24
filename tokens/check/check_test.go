package check

import (
	"errors"
	"testing"
)

func TestListRecordsInOrderAndFailReturnsItsError(t *testing.T) {
	var l List
	if l.Last() != (Step{}) || len(l.Steps()) != 0 {
		t.Fatal("a new List is not empty")
	}
	boom := errors.New("boom")
	l.Pass(UserInfo)
	if err := l.Fail(Issuer, boom); err != boom {
		t.Fatalf("Fail returned %v", err)
	}
	l.UsedKey("k1", "RS256")
	got := l.Steps()
	want := []Step{{Name: UserInfo, Passed: true}, {Name: Issuer, Err: boom}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || l.Last() != want[1] || l.Kid != "k1" || l.Alg != "RS256" {
		t.Fatalf("steps %+v, key %s %s", got, l.Kid, l.Alg)
	}
}

// The hot path records on a List for every request: it must cost no
// allocation, and a List past its room drops steps rather than grow.
func TestRecordingAllocatesNothingAndStaysBounded(t *testing.T) {
	var l List
	if n := testing.AllocsPerRun(100, func() {
		l = List{}
		for _, c := range All {
			l.Pass(c)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per validation", n)
	}
	for range 3 * maxSteps {
		l.Pass(Expiry)
	}
	if len(l.Steps()) != maxSteps {
		t.Fatalf("%d steps, room for %d", len(l.Steps()), maxSteps)
	}
}
