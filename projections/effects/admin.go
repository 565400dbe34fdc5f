package effects

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Admin is the operators' access to the parked events of several effects:
// list them and re-drive one event, one instance or all, as Go calls, over
// HTTP ([Admin.ServeHTTP]) and from a command line ([RunCLI]). The runners
// need not be started.
type Admin struct {
	runners map[string]*Runner
	names   []string
}

// NewAdmin returns the admin of runners; two runners of one effect are an
// error.
func NewAdmin(runners ...*Runner) (*Admin, error) {
	a := &Admin{runners: map[string]*Runner{}}
	for _, r := range runners {
		if r == nil {
			return nil, errors.New("effects: NewAdmin: nil runner")
		}
		if _, dup := a.runners[r.Name()]; dup {
			return nil, fmt.Errorf("effects: NewAdmin: two runners of effect %q", r.Name())
		}
		a.runners[r.Name()] = r
		a.names = append(a.names, r.Name())
	}
	slices.Sort(a.names)
	return a, nil
}

// Effects names the effects, sorted.
func (a *Admin) Effects() []string { return slices.Clone(a.names) }

func (a *Admin) runner(name string) (*Runner, error) {
	r, ok := a.runners[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownEffect, name, strings.Join(a.names, ", "))
	}
	return r, nil
}

// pick returns the runner of name, or every runner for "".
func (a *Admin) pick(name string) ([]*Runner, error) {
	if name != "" {
		r, err := a.runner(name)
		if err != nil {
			return nil, err
		}
		return []*Runner{r}, nil
	}
	out := make([]*Runner, 0, len(a.names))
	for _, n := range a.names {
		out = append(out, a.runners[n])
	}
	return out, nil
}

// ListParked lists the parked events of effect name, or of every effect
// for "", ordered by effect and event sequence.
func (a *Admin) ListParked(ctx context.Context, name string) ([]ParkedEffect, error) {
	rs, err := a.pick(name)
	if err != nil {
		return nil, err
	}
	var out []ParkedEffect
	for _, r := range rs {
		ps, err := r.ListParked(ctx, "")
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// Redrive re-drives one instance's parked events of effect name, or of
// every effect that has some for "" (see [Runner.Redrive]).
func (a *Admin) Redrive(ctx context.Context, name, instanceID, operator string) error {
	rs, err := a.pick(name)
	if err != nil {
		return err
	}
	var errs []error
	notParked := 0
	for _, r := range rs {
		err := r.Redrive(ctx, "", instanceID, operator)
		if name == "" && errors.Is(err, ErrNotParked) {
			notParked++
			continue
		}
		errs = append(errs, err)
	}
	if len(rs) > 0 && notParked == len(rs) {
		return fmt.Errorf("%w: no effect has parked events for instance %s", ErrNotParked, instanceID)
	}
	return errors.Join(errs...)
}

// RedriveEvent re-drives one parked event (see [Runner.RedriveEvent]).
func (a *Admin) RedriveEvent(ctx context.Context, name, instanceID string, seq uint64, operator string) error {
	r, err := a.runner(name)
	if err != nil {
		return err
	}
	return r.RedriveEvent(ctx, "", instanceID, seq, operator)
}

// RedriveAll re-drives everything parked of effect name, or of every
// effect for "" (see [Runner.RedriveAll]).
func (a *Admin) RedriveAll(ctx context.Context, name, operator string) error {
	rs, err := a.pick(name)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.RedriveAll(ctx, "", operator))
	}
	return errors.Join(errs...)
}

// RedriveRequest is the body of POST /redrive. Exactly one scope: an
// instance (InstanceID, with EventSeq for one event only) or All.
type RedriveRequest struct {
	// Effect names the effect; "" means every effect (not with EventSeq).
	Effect     string `json:"effect,omitempty"`
	InstanceID string `json:"instanceId,omitempty"`
	EventSeq   uint64 `json:"eventSeq,omitempty"`
	All        bool   `json:"all,omitempty"`
	// Operator names who asks; it is recorded in EffectRedriven.
	Operator string `json:"operator"`
}

// Do runs the re-drive r asks for.
func (a *Admin) Do(ctx context.Context, r RedriveRequest) error {
	switch {
	case strings.TrimSpace(r.Operator) == "":
		return errBadRequest("operator is required (it is recorded with the re-drive)")
	case r.All && (r.InstanceID != "" || r.EventSeq != 0):
		return errBadRequest("all excludes instanceId and eventSeq")
	case r.All:
		return a.RedriveAll(ctx, r.Effect, r.Operator)
	case r.InstanceID == "":
		return errBadRequest("name an instanceId (and optionally an eventSeq), or set all")
	case r.EventSeq != 0:
		if r.Effect == "" {
			return errBadRequest("eventSeq needs an effect")
		}
		return a.RedriveEvent(ctx, r.Effect, r.InstanceID, r.EventSeq, r.Operator)
	}
	return a.Redrive(ctx, r.Effect, r.InstanceID, r.Operator)
}

type badRequest string

func (b badRequest) Error() string { return "effects: " + string(b) }

func errBadRequest(msg string) error { return badRequest(msg) }

// ServeHTTP serves the operators' API (mount it under a prefix with
// http.StripPrefix, behind the API's authentication):
//
//	GET  /parked[?effect=NAME]  → 200 {"parked":[ParkedEffect…]}
//	POST /redrive  RedriveRequest → 200 {"status":"done"}
//
// Errors answer {"error":"…"} with 400 (malformed request), 404 (unknown
// effect, nothing parked), 409 (an earlier event is parked, or the event
// failed again and is parked anew) or 500. A re-drive answers when it is
// over, so give the request a generous timeout.
func (a *Admin) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch strings.TrimSuffix(req.URL.Path, "/") {
	case "/parked":
		if req.Method != http.MethodGet {
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET"})
			return
		}
		ps, err := a.ListParked(req.Context(), req.URL.Query().Get("effect"))
		if err != nil {
			writeError(w, err)
			return
		}
		if ps == nil {
			ps = []ParkedEffect{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"parked": ps})
	case "/redrive":
		if req.Method != http.MethodPost {
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
			return
		}
		var rr RedriveRequest
		dec := json.NewDecoder(io.LimitReader(req.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rr); err != nil {
			writeError(w, errBadRequest("body: "+err.Error()))
			return
		}
		if err := a.Do(req.Context(), rr); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "done"})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown path; use GET /parked or POST /redrive"})
	}
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var bad badRequest
	switch {
	case errors.As(err, &bad):
		status = http.StatusBadRequest
	case errors.Is(err, ErrOutOfOrder), errors.Is(err, ErrStillParked):
		status = http.StatusConflict
	case errors.Is(err, ErrUnknownEffect), errors.Is(err, ErrNotParked):
		status = http.StatusNotFound
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// RunCLI runs an operator's command against a; args are what follows the
// command's name (e.g. os.Args[2:] of "gallerist effects …"):
//
//	parked  [-effect NAME] [-json]
//	redrive -operator WHO [-effect NAME] (-instance ID [-seq N] | -all)
//
// Output goes to out; usage errors and failures are returned.
func RunCLI(ctx context.Context, a *Admin, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: effects parked [-effect NAME] [-json] | effects redrive -operator WHO [-effect NAME] (-instance ID [-seq N] | -all)")
	}
	switch args[0] {
	case "parked":
		fs := flag.NewFlagSet("parked", flag.ContinueOnError)
		fs.SetOutput(out)
		name := fs.String("effect", "", "effect name (default: every effect)")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		ps, err := a.ListParked(ctx, *name)
		if err != nil {
			return err
		}
		if *asJSON {
			if ps == nil {
				ps = []ParkedEffect{}
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(ps)
		}
		if len(ps) == 0 {
			_, err := fmt.Fprintln(out, "nothing parked")
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EFFECT\tINSTANCE\tSEQ\tTYPE\tATTEMPTS\tPARKED AT\tREASON")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", p.Effect, p.InstanceID, p.EventSeq, p.EventType,
				p.Attempts, p.ParkedAt.UTC().Format(time.RFC3339), oneLine(p.Reason))
		}
		return tw.Flush()
	case "redrive":
		fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
		fs.SetOutput(out)
		var rr RedriveRequest
		fs.StringVar(&rr.Operator, "operator", "", "who asks (recorded with the re-drive; required)")
		fs.StringVar(&rr.Effect, "effect", "", "effect name (default: every effect)")
		fs.StringVar(&rr.InstanceID, "instance", "", "re-drive this instance's parked events")
		fs.Uint64Var(&rr.EventSeq, "seq", 0, "with -instance: re-drive only the parked event at this sequence")
		fs.BoolVar(&rr.All, "all", false, "re-drive every parked event")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if err := a.Do(ctx, rr); err != nil {
			return err
		}
		_, err := fmt.Fprintln(out, "re-driven: done")
		return err
	}
	return fmt.Errorf("effects: unknown command %q (parked, redrive)", args[0])
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= 120 {
		return s
	}
	cut := 117
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
