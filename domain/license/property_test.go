package license

import (
	"errors"
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

func genCommand() *rapid.Generator[Command] {
	return rapid.Custom(func(t *rapid.T) Command {
		debug := rapid.Float64Range(0, 1).Draw(t, "debugRoll") < 0.2
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0:
			return Issue{InstanceID: "b-1", OrderID: rapid.SampledFrom([]string{"o-1", "o-2"}).Draw(t, "order"),
				BusinessID: rapid.StringMatching(`b-[0-9]`).Draw(t, "business"), Customer: Customer{ID: "c-1"},
				Text: rapid.StringMatching(`T[a-z]{0,4}`).Draw(t, "text"), Debug: debug}
		case 1:
			days := rapid.IntRange(-30, 400).Draw(t, "days")
			return Refresh{OrderID: rapid.SampledFrom([]string{"r-1", "r-2", "r-3"}).Draw(t, "renewal"),
				ExpireTime: expiry.AddDate(0, 0, days), ProductID: rapid.SampledFrom([]string{"", "p-2"}).Draw(t, "product"), Debug: debug}
		case 2:
			return Expire{OrderID: rapid.SampledFrom([]string{"", "o-1"}).Draw(t, "order"), Debug: debug}
		default:
			return Release{OrderID: "o-1", Debug: debug}
		}
	})
}

var allowed = map[[2]Status]bool{
	{StatusNone, StatusIssued}: true, {StatusIssued, StatusFrozen}: true, {StatusFrozen, StatusIssued}: true,
	{StatusIssued, StatusReleased}: true, {StatusFrozen, StatusReleased}: true,
}

func debugOf(c Command) bool {
	switch c := c.(type) {
	case Issue:
		return c.Debug
	case Refresh:
		return c.Debug
	case Expire:
		return c.Debug
	case Release:
		return c.Debug
	}
	return false
}

// Any sequence of commands keeps the aggregate's invariants, and the log it
// writes replays (through Encode/Decode) to the same state.
func TestPropertyCommandSequences(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var (
			s   State
			log []Event
		)
		for i, c := range rapid.SliceOfN(genCommand(), 1, 25).Draw(t, "commands") {
			before := fmt.Sprintf("%+v", s)
			events, err := Decide(s, c)
			if fmt.Sprintf("%+v", s) != before {
				t.Fatalf("step %d: Decide mutated its input", i)
			}
			if err != nil {
				if events != nil {
					t.Fatalf("step %d: events with error", i)
				}
				if debugOf(c) {
					t.Fatalf("step %d: debug %s failed: %v", i, Name(c), err)
				}
				if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIDInUse) {
					t.Fatalf("step %d: unexpected error %v", i, err)
				}
				continue
			}
			if debugOf(c) && len(events) != 0 {
				t.Fatalf("step %d: debug %s produced %v", i, Name(c), events)
			}
			next := s
			for _, e := range events {
				next = Evolve(next, e)
			}
			if next.Status != s.Status && !allowed[[2]Status{s.Status, next.Status}] {
				t.Fatalf("step %d: %s moved %q → %q", i, Name(c), s.Status, next.Status)
			}
			if s.Status.Exists() && (next.ID != s.ID || next.Text != s.Text || next.OrderID != s.OrderID) {
				t.Fatalf("step %d: identity or text changed: %+v → %+v", i, s, next)
			}
			if again, err := Decide(next, c); err == nil && len(again) != 0 {
				t.Fatalf("step %d: repeat of %s produced %v", i, Name(c), again)
			}
			log = append(log, events...)
			s = next
		}
		replayed := State{}
		for _, e := range log {
			typ, v, data, err := Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Decode(typ, v, data)
			if err != nil {
				t.Fatal(err)
			}
			replayed = Evolve(replayed, d)
		}
		if fmt.Sprintf("%+v", normalise(replayed)) != fmt.Sprintf("%+v", normalise(s)) {
			t.Fatalf("replay differs:\n got %+v\nwant %+v", replayed, s)
		}
	})
}

// normalise drops the monotonic clock reading and location, which a JSON
// round trip does not keep.
func normalise(s State) State {
	s.ExpireTime = s.ExpireTime.UTC().Round(0)
	s.Purchase.ExpireTime = s.Purchase.ExpireTime.UTC().Round(0)
	return s
}
