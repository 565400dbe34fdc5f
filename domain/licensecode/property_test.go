package licensecode

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func genAnswer(t *rapid.T) Answer {
	return Answer{At: t0.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "minute")) * time.Minute),
		ErrorCode: rapid.SampledFrom([]string{APISuccess, APISuccess, "92020003", "92020004", "92020011"}).Draw(t, "errorCode")}
}

func genCommand() *rapid.Generator[Command] {
	return rapid.Custom(func(t *rapid.T) Command {
		debug := rapid.Float64Range(0, 1).Draw(t, "debugRoll") < 0.2
		switch rapid.IntRange(0, 6).Draw(t, "kind") {
		case 0:
			return Register{Code: "PL-1"}
		case 1:
			return Refresh{Scene: rapid.SampledFrom(Scenes).Draw(t, "scene"),
				OrderID: rapid.SampledFrom([]string{"r-1", "r-2"}).Draw(t, "order"), OrderLineID: "l",
				ExpireTime: expiry.AddDate(0, 0, rapid.IntRange(-30, 400).Draw(t, "days")), Debug: debug}
		case 2:
			return SetStatus{Target: rapid.SampledFrom([]Target{TargetFreeze, TargetUnfreeze}).Draw(t, "target"), Debug: debug}
		case 3:
			return Release{Debug: debug}
		case 4:
			a := genAnswer(t)
			c := RecordActivation{Answer: a}
			if a.OK() {
				c.Info = &CodeInfo{Status: RemoteAlive, ExpireTime: expiry}
			}
			return c
		case 5:
			a := genAnswer(t)
			c := RecordQuery{Answer: a}
			if a.OK() {
				c.Info = &QueryInfo{Status: RemoteAlive, ActivateTime: t0, ExpireTime: expiry.AddDate(0, 0, rapid.IntRange(0, 9).Draw(t, "qdays"))}
			}
			return c
		default:
			return RecordUsage{Answer: genAnswer(t), Entries: []UsageEntry{{ID: "a"}}}
		}
	})
}

var allowed = map[[2]Status]bool{
	{StatusNone, StatusActive}: true, {StatusActive, StatusFrozen}: true, {StatusFrozen, StatusActive}: true,
	{StatusActive, StatusReleased}: true, {StatusFrozen, StatusReleased}: true,
}

func debugOf(c Command) bool {
	switch c := c.(type) {
	case Refresh:
		return c.Debug
	case SetStatus:
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
		for i, c := range rapid.SliceOfN(genCommand(), 1, 30).Draw(t, "commands") {
			before := fmt.Sprintf("%+v", s)
			events, err := Decide(s, c)
			if fmt.Sprintf("%+v", s) != before {
				t.Fatalf("step %d: Decide mutated its input", i)
			}
			if err != nil {
				if events != nil {
					t.Fatalf("step %d: events with error", i)
				}
				if debugOf(c) || !errors.Is(err, ErrNotFound) {
					t.Fatalf("step %d: %s failed: %v", i, Name(c), err)
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
			if s.Activation == ActivationConfirmed && next.Activation != ActivationConfirmed {
				t.Fatalf("step %d: %s undid the activation", i, Name(c))
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
		if !reflect.DeepEqual(replayed, s) {
			t.Fatalf("replay differs:\n got %+v\nwant %+v", replayed, s)
		}
	})
}
