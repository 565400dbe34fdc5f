package kg

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// ErrScenarioFailed is wrapped by the error of a `kg run` whose scenario
// found the production address breaking a rule.
var ErrScenarioFailed = errors.New("scenario failed")

// Scenario is a named sequence of calls `kg run` plays.
type Scenario struct {
	// Family is the product family the scenario speaks.
	Family string
	Name   string
	Title  string
	run    check
}

// scenarios lists what `kg run` plays, in the order --list shows them.
func scenarios() []Scenario {
	return []Scenario{
		{FamilySaaSV2, "lifecycle-period", "yearly/monthly: purchase → provision (000004 then queryInstance polling) → renew → freeze → renew → unfreeze → change check → renewal with change → upgrade → renewal cancel → freeze → release → calls after release", scenarioPeriod},
		{FamilySaaSV2, "lifecycle-trial", "trial: purchase → provision → trial-to-formal → renew → release (unsubscription) → calls after release", scenarioTrial},
		{FamilySaaSV2, "lifecycle-one-time", "one-time: purchase → provision → the buyer views the resource → release → calls after release", scenarioOneTime},
		{FamilySaaSV2, "lifecycle-pay-per-use", "pay-per-use: purchase → provision → freeze (arrears) → unfreeze → release → calls after release", scenarioPayPerUse},
		{FamilySaaSV2, "retry-schedule", "KooGallery's retry schedule (every 2 min for 2 h, compressed by --speed): newInstance retried until accepted, queryInstance polled until ready, newInstance and a renewal re-sent as after lost answers", func(ctx context.Context, s *session) (string, error) {
			return retryScenario(ctx, s, int(retryWindow/retryInterval))
		}},
		{FamilySaaSV2, "duplicate-storm", "--storm concurrent identical calls: newInstance (one instance), then renewal, freeze, unfreeze and release storms", stormScenario},
		{FamilySaaSV2, "dial-test", "the dial test: the saved debug cases (testFlag 1) of every activity replayed twice, 12 h apart (compressed), re-signed", func(ctx context.Context, s *session) (string, error) {
			return dialTest(ctx, s, dialTestGap)
		}},
		{FamilySaaSV2, "negative", "tampered signature, stale timestamps, replayed nonce, missing and overlong fields: the documented codes and no state change", negativeScenario},
		{FamilySaaSV1, "saas-v1-lifecycle", "SaaS V1 yearly/monthly: purchase → provision → renew → expire → renew → FREEZE/NORMAL → upgrade → release → after release", checkV1Lifecycle},
		{FamilySaaSV1, "saas-v1-pay-per-use", "SaaS V1 pay-per-use: one order with two billing items (two productIds) → two instances, each idempotent", checkV1PayPerUse},
		{FamilyLicenseA, "license-a-lifecycle", "License A yearly: getLicense → renew → renewal re-sent → expire → renew (reactivated) → release → after release (same license)", checkLALifecycle},
		{FamilyLicenseA, "license-a-retry", "License A: getLicense re-sent by KooGallery's retries (GET and POST-body variant) → the same instance and license", checkLAIdempotent},
		{FamilyLicenseB, "license-b-unknown-code", "License B without an activated code: refresh, FREEZE, release → 000003; the same as debug calls → 000000 and no state change", func(ctx context.Context, s *session) (string, error) {
			a, err := checkLBUnknown(ctx, s)
			if err != nil {
				return "", err
			}
			b, err := checkLBDebug(ctx, s)
			return a + "; " + b, err
		}},
		{FamilyLicenseC, "license-c-lifecycle-period", "License C yearly: purchase → provision → getLicenseAsync (000004, re-sent) → renew → freeze → unfreeze → renewal cancel → release → after release", checkLCLifecyclePeriod},
		{FamilyLicenseC, "license-c-lifecycle-one-time", "License C one-time: purchase → provision → getLicenseAsync without expireTime → another device → release → after release", checkLCLifecycleOneTime},
	}
}

// ScenarioReport is what `kg run --json` prints.
type ScenarioReport struct {
	Scenario string  `json:"scenario"`
	URL      string  `json:"url"`
	Speed    float64 `json:"speed"`
	Pass     bool    `json:"pass"`
	Evidence string  `json:"evidence"`
	Steps    []Step  `json:"steps"`
}

func runScenarioCmd(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	fs := flag.NewFlagSet("kg run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: gallerist kg run SCENARIO --url URL (--key KEY | --config FILE) [flags]\n       gallerist kg run --list\n\n")
		fs.PrintDefaults()
	}
	var tf targetFlags
	tf.register(fs)
	list := fs.Bool("list", false, "list the scenarios and exit")
	speed := fs.Float64("speed", 600, "compress KooGallery's waits (retry interval 2 min, retry window 2 h, dial-test gap 12 h) by this factor; 1 = real time")
	storm := fs.Int("storm", 16, "concurrent identical calls of a duplicate storm")
	asJSON := fs.Bool("json", false, "print one JSON report instead of the steps")
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kg run: unexpected argument %q", fs.Arg(0))
	}
	all := scenarios()
	if *list {
		for _, sc := range all {
			fmt.Fprintf(stdout, "%-28s %-9s %s\n", sc.Name, sc.Family, sc.Title)
		}
		return nil
	}
	var sc *Scenario
	names := make([]string, len(all))
	for i := range all {
		names[i] = all[i].Name
		if all[i].Name == name {
			sc = &all[i]
		}
	}
	if sc == nil {
		if name == "" {
			return fmt.Errorf("kg run: give a SCENARIO (one of %s; --list describes them)", strings.Join(names, ", "))
		}
		return fmt.Errorf("kg run: unknown SCENARIO %q (one of %s)", name, strings.Join(names, ", "))
	}
	if err := envFlags(fs, lookup); err != nil {
		return err
	}
	if err := checkSpeedStorm(*speed, *storm); err != nil {
		return err
	}
	if tf.family == "" && tf.configPath == "" {
		tf.family = sc.Family // --key without --family: the scenario's family
	}
	t, err := tf.resolve()
	if err != nil {
		return err
	}
	if t.family.Name() != sc.Family {
		return fmt.Errorf("kg run %s plays %s; the target is --family %s", sc.Name, sc.Family, t.family.Name())
	}
	d := newDriver(t, tf.insecure, *speed, *storm)
	defer d.close()

	var mu sync.Mutex
	var werr error
	onStep := func(st Step) {
		if *asJSON {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := io.WriteString(stdout, formatStep(st)); err != nil && werr == nil {
			werr = err
		}
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "scenario %s against %s (waits ×1/%g)\n", sc.Name, t.url.Redacted(), *speed)
	}
	s := d.session(onStep)
	evidence, runErr := sc.run(ctx, s)
	rep := ScenarioReport{Scenario: sc.Name, URL: t.url.Redacted(), Speed: *speed, Pass: runErr == nil, Evidence: evidence, Steps: s.steps}
	if runErr != nil {
		rep.Evidence = strings.TrimPrefix(runErr.Error(), errViolation.Error()+": ")
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("kg run: write report: %w", err)
		}
	} else {
		verdict := "PASS"
		if runErr != nil {
			verdict = "FAIL"
		}
		if _, err := fmt.Fprintf(stdout, "%s %s — %s\n", verdict, sc.Name, rep.Evidence); err != nil {
			return fmt.Errorf("kg run: write: %w", err)
		}
	}
	if werr != nil {
		return fmt.Errorf("kg run: write: %w", werr)
	}
	if runErr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("kg run %s: %w", sc.Name, runErr)
		}
		return fmt.Errorf("kg run %s: %w: %w", sc.Name, ErrScenarioFailed, runErr)
	}
	return nil
}

func checkSpeedStorm(speed float64, storm int) error {
	if speed <= 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
		return fmt.Errorf("--speed must be a positive number, got %v", speed)
	}
	if storm < 2 || storm > 1024 {
		return fmt.Errorf("--storm must be between 2 and 1024, got %d", storm)
	}
	return nil
}

// formatStep is one printed line: activity, note, result, evidence.
func formatStep(st Step) string {
	act := st.Activity
	if st.Note != "" {
		act += " [" + st.Note + "]"
	}
	return fmt.Sprintf("  %-58s %-9s %s (%.1f ms)\n", act, st.Result, st.Evidence, st.DurationMs)
}

// ---- lifecycles (saas-v2.md §2) ----

func scenarioPeriod(ctx context.Context, s *session) (string, error) {
	id, orderID, lineID, err := s.create(ctx, "period purchase")
	if err != nil {
		return "", err
	}
	_, polls, err := s.provisioned(ctx, id)
	if err != nil {
		return "", err
	}
	year := 365 * 24 * time.Hour
	steps := []func() error{
		func() error {
			_, err := s.refresh(ctx, id, "RENEWAL", expireIn(2*year), callOpts{note: "renewal"}, cOK)
			return err
		},
		func() error { _, err := s.status(ctx, id, "FREEZE", callOpts{note: "expired"}, cOK); return err },
		func() error { return s.stillThere(ctx, id, "frozen: data kept") },
		func() error {
			_, err := s.refresh(ctx, id, "RENEWAL", expireIn(3*year), callOpts{note: "renewal in the freeze period"}, cOK)
			return err
		},
		func() error { _, err := s.status(ctx, id, "UNFREEZE", callOpts{note: "renewed"}, cOK); return err },
		func() error {
			_, err := s.expect(ctx, "changeInstanceCheck", map[string]any{"instanceId": id, "productInfo": productInfo()}, callOpts{note: "before a renewal with change"}, cOK, cParam)
			return err
		},
		func() error {
			_, err := s.refresh(ctx, id, "RENEWAL_CHANGE", expireIn(4*year), callOpts{note: "renewal with change"}, cOK)
			return err
		},
		func() error {
			uo, ul, _ := s.order()
			_, err := s.expect(ctx, "upgradeInstance", map[string]any{"instanceId": id, "orderId": uo, "orderLineId": ul}, callOpts{note: "upgrade order"}, cOK)
			return err
		},
		func() error {
			_, err := s.refresh(ctx, id, "UNSUBSCRIBE_RENEWAL_PERIOD", expireIn(3*year), callOpts{note: "renewal period cancelled"}, cOK)
			return err
		},
		func() error { _, err := s.status(ctx, id, "FREEZE", callOpts{note: "expired again"}, cOK); return err },
		func() error {
			_, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id}, callOpts{note: "freeze period over"}, cOK)
			return err
		},
		func() error { return s.afterRelease(ctx, id, orderID, lineID) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("instance %s: ready after %d poll(s), %d lifecycle steps answered as documented, released", id, polls, len(steps)), nil
}

func scenarioTrial(ctx context.Context, s *session) (string, error) {
	id, orderID, lineID, err := s.create(ctx, "trial purchase")
	if err != nil {
		return "", err
	}
	if _, _, err := s.provisioned(ctx, id); err != nil {
		return "", err
	}
	if _, err := s.refresh(ctx, id, "TRIAL_TO_FORMAL", expireIn(30*24*time.Hour), callOpts{note: "trial converted"}, cOK); err != nil {
		return "", err
	}
	if _, err := s.refresh(ctx, id, "RENEWAL", expireIn(60*24*time.Hour), callOpts{note: "renewal"}, cOK); err != nil {
		return "", err
	}
	uo, ul, _ := s.order()
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id, "orderId": uo, "orderLineId": ul}, callOpts{note: "unsubscribed"}, cOK); err != nil {
		return "", err
	}
	if err := s.afterRelease(ctx, id, orderID, lineID); err != nil {
		return "", err
	}
	return fmt.Sprintf("instance %s: trial → formal → renewed → unsubscribed, as documented", id), nil
}

func scenarioOneTime(ctx context.Context, s *session) (string, error) {
	id, orderID, lineID, err := s.create(ctx, "one-time purchase")
	if err != nil {
		return "", err
	}
	if _, _, err := s.provisioned(ctx, id); err != nil {
		return "", err
	}
	if err := s.stillThere(ctx, id, "the buyer views the resource"); err != nil {
		return "", err
	}
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id}, callOpts{note: "end of life"}, cOK); err != nil {
		return "", err
	}
	if err := s.afterRelease(ctx, id, orderID, lineID); err != nil {
		return "", err
	}
	return fmt.Sprintf("instance %s: purchased, viewed, released, as documented", id), nil
}

func scenarioPayPerUse(ctx context.Context, s *session) (string, error) {
	id, orderID, lineID, err := s.create(ctx, "pay-per-use purchase")
	if err != nil {
		return "", err
	}
	if _, _, err := s.provisioned(ctx, id); err != nil {
		return "", err
	}
	if _, err := s.status(ctx, id, "FREEZE", callOpts{note: "arrears"}, cOK); err != nil {
		return "", err
	}
	if _, err := s.status(ctx, id, "UNFREEZE", callOpts{note: "topped up"}, cOK); err != nil {
		return "", err
	}
	uo, ul, _ := s.order()
	if _, err := s.expect(ctx, "releaseInstance", map[string]any{"instanceId": id, "orderId": uo, "orderLineId": ul}, callOpts{note: "unsubscribed"}, cOK); err != nil {
		return "", err
	}
	if err := s.afterRelease(ctx, id, orderID, lineID); err != nil {
		return "", err
	}
	return fmt.Sprintf("instance %s: purchased, frozen, unfrozen, released, as documented", id), nil
}

// ---- retries (codes-and-rules.md §4) ----

// retryScenario plays KooGallery's retry schedule: newInstance re-sent
// every retryInterval until accepted (within retryWindow), queryInstance
// polled until ready, then newInstance and a renewal each re-sent resends
// times at the interval, as when KooGallery lost the answers.
func retryScenario(ctx context.Context, s *session, resends int) (string, error) {
	orderID, lineID, business := s.order()
	f := map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}
	deadline := time.Now().Add(s.d.scaled(retryWindow))
	var r reply
	attempts := 0
	for {
		attempts++
		var err error
		r, err = s.expect(ctx, "newInstance", f, callOpts{note: fmt.Sprintf("attempt %d", attempts)}, cOK, cProcessing)
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", fmt.Errorf("newInstance not accepted after %d attempts over the retry window: %w", attempts, err)
		}
		if err := s.sleep(ctx, retryInterval); err != nil {
			return "", err
		}
	}
	id := r.InstanceID
	if id != business {
		return "", violation("newInstance answered instanceId %q, want the businessId %q", id, business)
	}
	_, polls, err := s.provisioned(ctx, id)
	if err != nil {
		return "", err
	}
	for i := 1; i <= resends; i++ {
		if err := s.sleep(ctx, retryInterval); err != nil {
			return "", err
		}
		f["businessId"] = uuidText() // a re-sent order may carry a new businessId
		r, err := s.expect(ctx, "newInstance", f, callOpts{note: fmt.Sprintf("re-send %d/%d", i, resends)}, cOK)
		if err != nil {
			return "", err
		}
		if r.InstanceID != id {
			return "", violation("re-send %d answered instanceId %q, want %q (a second instance)", i, r.InstanceID, id)
		}
	}
	ro, rl, _ := s.order()
	rf := map[string]any{"scene": "RENEWAL", "orderId": ro, "orderLineId": rl, "instanceId": id, "expireTime": expireIn(365 * 24 * time.Hour)}
	for i := 0; i <= resends; i++ {
		if i > 0 {
			if err := s.sleep(ctx, retryInterval); err != nil {
				return "", err
			}
		}
		if _, err := s.expect(ctx, "refreshInstance", rf, callOpts{note: fmt.Sprintf("renewal, send %d", i+1)}, cOK); err != nil {
			return "", err
		}
	}
	if err := s.stillThere(ctx, id, "one instance after the retries"); err != nil {
		return "", err
	}
	return fmt.Sprintf("accepted on attempt %d, ready after %d poll(s); %d re-sends of newInstance and of the renewal every %s (%s real time at ×%g) → same instance, 000000",
		attempts, polls, resends, retryInterval, s.d.scaled(retryInterval), s.d.speed), nil
}

// ---- duplicate storms (codes-and-rules.md §3) ----

// storm sends s.d.storm identical calls at once and returns the answers'
// instanceIds (counted) once every call answered one of codes.
func (s *session) storm(ctx context.Context, act string, f map[string]any, note string, codes ...koogallery.Code) (map[string]int, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  = map[string]int{}
		errs []error
	)
	for range s.d.storm {
		wg.Go(func() {
			r, err := s.expect(ctx, act, f, callOpts{note: note}, codes...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			ids[r.InstanceID]++
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return ids, fmt.Errorf("%d of %d %s calls: %w", len(errs), s.d.storm, note, errs[0])
	}
	return ids, nil
}

func stormScenario(ctx context.Context, s *session) (string, error) {
	orderID, lineID, business := s.order()
	ids, err := s.storm(ctx, "newInstance", map[string]any{"orderId": orderID, "orderLineId": lineID, "businessId": business}, "storm", cOK, cProcessing)
	if err != nil {
		return "", err
	}
	if len(ids) != 1 || ids[business] != s.d.storm {
		return "", violation("a storm of %d identical newInstance calls answered instanceIds %v, want only %q", s.d.storm, ids, business)
	}
	if _, _, err := s.provisioned(ctx, business); err != nil {
		return "", err
	}
	ro, rl, _ := s.order()
	storms := []struct {
		act, note string
		f         map[string]any
	}{
		{"refreshInstance", "renewal storm", map[string]any{"scene": "RENEWAL", "orderId": ro, "orderLineId": rl, "instanceId": business, "expireTime": expireIn(365 * 24 * time.Hour)}},
		{"updateInstanceStatus", "freeze storm", map[string]any{"instanceId": business, "status": "FREEZE"}},
		{"updateInstanceStatus", "unfreeze storm", map[string]any{"instanceId": business, "status": "UNFREEZE"}},
		{"releaseInstance", "release storm", map[string]any{"instanceId": business}},
	}
	for _, st := range storms {
		if _, err := s.storm(ctx, st.act, st.f, st.note, cOK); err != nil {
			return "", err
		}
	}
	if _, err := s.expect(ctx, "queryInstance", map[string]any{"instanceId": business}, callOpts{note: "after the release storm"}, cNotFound); err != nil {
		return "", err
	}
	return fmt.Sprintf("storms of %d: newInstance → one instance; renewal, freeze, unfreeze, release → 000000 each; released", s.d.storm), nil
}

// ---- negative cases ----

func negativeScenario(ctx context.Context, s *session) (string, error) {
	var ev []string
	for _, c := range []check{checkSigTampered, checkTSStale, checkNonceReplay, checkFieldMissing, checkFieldOverlong} {
		e, err := c(ctx, s)
		if err != nil {
			return "", err
		}
		ev = append(ev, e)
	}
	return strings.Join(ev, "; "), nil
}
