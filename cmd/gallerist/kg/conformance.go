package kg

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// ErrConformanceFailed is wrapped by the error of a `kg conformance` run in
// which some rule failed.
var ErrConformanceFailed = errors.New("conformance rules failed")

// notCovered says what the catalogue does not check (yet), in the report.
func notCovered(family string) []string {
	if family == FamilySaaSV1 {
		return []string{
			"SaaS V1 POST-body variant (saas-v1.md §1): the rules send the GET variant",
			"SaaS V1 pay-per-use idempotency on orderId + productId, saasExtendParams, encrypted mobilePhone/email (saas-v1.md §3)",
			"SaaS V1 duplicate storms, retry schedule, field lengths and timeStamp window (saas-v1.md, auth.md §3): not yet",
		}
	}
	return []string{
		"SaaS V1 (saas-v1.md): run kg conformance --family saas-v1 against a V1 route",
		"License A/B/C (license.md): not served by Gallerist yet",
		"HTTP 413 over the body cap (codes-and-rules.md §1): the cap is configurable, so no fixed size is checked",
		"releaseInstance of an instance still provisioning (saas-v2.md §7): not reachable from outside",
		"creation refusals 000100–000107 and changeInstanceCheck refusals: depend on the vendor's provisioner and policy",
		"signature forms (b), (c), (d) of auth.md §2.3: the emulator signs form (a) with sorted string members, where (a)–(c) agree",
	}
}

// RuleResult is one rule's verdict.
type RuleResult struct {
	Rule
	Pass       bool    `json:"pass"`
	Evidence   string  `json:"evidence"`
	DurationMs float64 `json:"durationMs"`
	Steps      []Step  `json:"steps"`
}

// ConformanceReport is what `kg conformance --json FILE` writes.
type ConformanceReport struct {
	URL        string       `json:"url"`
	Family     string       `json:"family"`
	Speed      float64      `json:"speed"`
	Storm      int          `json:"storm"`
	Started    time.Time    `json:"started"`
	DurationMs float64      `json:"durationMs"`
	Passed     int          `json:"passed"`
	Failed     int          `json:"failed"`
	Rules      []RuleResult `json:"rules"`
	NotCovered []string     `json:"notCovered"`
}

func runConformance(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	fs := flag.NewFlagSet("kg conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf targetFlags
	tf.register(fs)
	jsonPath := fs.String("json", "", "also write the report as JSON to this file (- for stdout, replacing the lines)")
	only := fs.String("only", "", "run only the rules whose id matches this regular expression, e.g. 'SIG|NONCE'")
	list := fs.Bool("list", false, "list the rules (id, spec reference, what is checked) and exit")
	speed := fs.Float64("speed", 600, "compress KooGallery's waits (queryInstance polling and retries every 2 min, for 2 h) by this factor")
	storm := fs.Int("storm", 16, "concurrent identical calls of the duplicate-storm rule")
	steps := fs.Bool("steps", false, "print every call of every rule (failed rules always show theirs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kg conformance: unexpected argument %q", fs.Arg(0))
	}
	if *list {
		rules, err := selectRules(tf.family, *only)
		if err != nil {
			return err
		}
		for _, r := range rules {
			fmt.Fprintf(stdout, "%-26s %-48s %s\n", r.ID, r.Ref, r.Title)
		}
		return nil
	}
	if err := envFlags(fs, lookup); err != nil {
		return err
	}
	if err := checkSpeedStorm(*speed, *storm); err != nil {
		return err
	}
	t, err := tf.resolve()
	if err != nil {
		return err
	}
	rules, err := selectRules(t.family.Name(), *only)
	if err != nil {
		return err
	}
	out := stdout
	if *jsonPath == "-" {
		out = io.Discard
	}
	rep, err := conformance(ctx, t, tf.insecure, *speed, *storm, rules, out, *steps)
	if err != nil {
		return err
	}
	if *jsonPath != "" {
		if err := writeReport(*jsonPath, stdout, rep); err != nil {
			return err
		}
	}
	if rep.Failed > 0 {
		var ids []string
		for _, r := range rep.Rules {
			if !r.Pass {
				ids = append(ids, r.ID)
			}
		}
		return fmt.Errorf("kg conformance: %w: %d of %d (%s)", ErrConformanceFailed, rep.Failed, len(rep.Rules), strings.Join(ids, ", "))
	}
	return nil
}

// selectRules returns the family's catalogue, or the rules of it whose id
// matches the regular expression only.
func selectRules(family, only string) ([]Rule, error) {
	rules := v2Rules()
	if family == FamilySaaSV1 {
		rules = v1Rules()
	}
	if only == "" {
		return rules, nil
	}
	re, err := regexp.Compile(only)
	if err != nil {
		return nil, fmt.Errorf("--only %q: %w", only, err)
	}
	var sel []Rule
	for _, r := range rules {
		if re.MatchString(r.ID) {
			sel = append(sel, r)
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("--only %q matches no %s rule id (kg conformance --list shows them)", only, family)
	}
	return sel, nil
}

// conformance runs rules one after the other against t and prints one line
// per rule to out.
func conformance(ctx context.Context, t target, insecure bool, speed float64, storm int, rules []Rule, out io.Writer, allSteps bool) (ConformanceReport, error) {
	d := newDriver(t, insecure, speed, storm)
	defer d.close()
	rep := ConformanceReport{URL: t.url.Redacted(), Family: t.family.Name(), Speed: speed, Storm: storm, Started: time.Now().UTC(), NotCovered: notCovered(t.family.Name())}
	var b strings.Builder
	fmt.Fprintf(&b, "kg conformance: %d %s rules against %s (waits ×1/%g, storms of %d)\n", len(rules), rep.Family, rep.URL, speed, storm)
	if err := write(out, &b); err != nil {
		return rep, err
	}
	for _, r := range rules {
		s := d.session(nil)
		start := time.Now()
		evidence, err := r.check(ctx, s)
		res := RuleResult{Rule: r, Pass: err == nil, Evidence: evidence, DurationMs: float64(time.Since(start).Microseconds()) / 1000, Steps: s.steps}
		if ctx.Err() != nil {
			return rep, fmt.Errorf("kg conformance: interrupted at %s: %w", r.ID, ctx.Err())
		}
		verdict := "PASS"
		if err != nil {
			verdict = "FAIL"
			res.Evidence = strings.TrimPrefix(err.Error(), errViolation.Error()+": ")
			rep.Failed++
		} else {
			rep.Passed++
		}
		rep.Rules = append(rep.Rules, res)
		fmt.Fprintf(&b, "%s %s %s — %s\n", verdict, r.ID, r.Ref, res.Evidence)
		if err != nil || allSteps {
			for _, st := range res.Steps {
				b.WriteString("    " + formatStep(st))
			}
		}
		if err := write(out, &b); err != nil {
			return rep, err
		}
	}
	rep.DurationMs = float64(time.Since(rep.Started).Microseconds()) / 1000
	fmt.Fprintf(&b, "%d rules: %d passed, %d failed (%.1fs)\n", len(rep.Rules), rep.Passed, rep.Failed, rep.DurationMs/1000)
	for _, n := range rep.NotCovered {
		fmt.Fprintf(&b, "not covered: %s\n", n)
	}
	return rep, write(out, &b)
}

// write flushes b to w.
func write(w io.Writer, b *strings.Builder) error {
	_, err := io.WriteString(w, b.String())
	b.Reset()
	if err != nil {
		return fmt.Errorf("kg conformance: write: %w", err)
	}
	return nil
}

func writeReport(path string, stdout io.Writer, rep ConformanceReport) error {
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("kg conformance: encode report: %w", err)
	}
	raw = append(raw, '\n')
	if path == "-" {
		if _, err := stdout.Write(raw); err != nil {
			return fmt.Errorf("kg conformance: write report: %w", err)
		}
		return nil
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("kg conformance: --json: %w", err)
	}
	return nil
}
