// Command gallerist is the vendor's production interface for Huawei Cloud
// KooGallery.
//
//	gallerist serve [flags]        run the service (embedded NATS by default)
//	gallerist sign [flags]         print a signed curl command for a V2 activity
//	gallerist events <instanceId>  print one instance's history from the log
//	gallerist replay [flags]       rebuild the SQL read models from the log
//	gallerist effects parked|redrive [flags]
//	                               list and re-drive parked side effects
//	gallerist kg call|load [flags] act as KooGallery toward a production URL
//	gallerist license keygen|verify  the built-in License A issuer's keys
//
// Every flag can also be set from the environment as GALLERIST_<FLAG>, with
// dashes as underscores (e.g. --nats-url → GALLERIST_NATS_URL); a flag on
// the command line wins.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gallerist/gallerist/cmd/gallerist/kg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "sign":
		err = sign(args[1:], stdout, stderr)
	case "events":
		err = events(ctx, args[1:], stdout, stderr)
	case "replay":
		err = replay(ctx, args[1:], stdout, stderr)
	case "effects":
		err = effectsCmd(ctx, args[1:], stdout, stderr)
	case "kg":
		err = kg.Run(ctx, args[1:], stdout, stderr)
	case "license":
		err = licenseCmd(args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "gallerist: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gallerist %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `gallerist — the vendor's production interface for Huawei Cloud KooGallery

Commands:
  serve   run the service (embedded NATS unless --nats-url is given)
  sign    print a ready-to-run signed curl command for a SaaS V2 activity
  events  print one instance's history from the event log
  replay  rebuild the SQL read models from the log and swap them in
  effects list parked side effects (effects parked) and re-drive them
          (effects redrive), through the query API of a running serve
  kg      act as KooGallery: kg call (one signed call, answer checked and
          decrypted), kg load (a signed call mix at a fixed rate or at most)
  license license keygen (the built-in License A issuer's key pair), license
          verify (check a license text offline with the public key)

Run "gallerist <command> -h" for its flags. Every flag can also be set as
GALLERIST_<FLAG> in the environment (e.g. GALLERIST_NATS_URL).
`)
}

// envFlags sets every flag not given on the command line from
// GALLERIST_<NAME> in the environment.
func envFlags(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := "GALLERIST_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}
