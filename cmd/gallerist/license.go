package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
)

// licenseCmd is `gallerist license keygen|verify`: the key pair of the
// built-in License A issuer, and an offline check of a license text.
func licenseCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		licenseUsage(stderr)
		return errors.New("want a subcommand: keygen or verify")
	}
	switch args[0] {
	case "keygen":
		return licenseKeygen(args[1:], stdout, stderr)
	case "verify":
		return licenseVerify(args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		licenseUsage(stdout)
		return nil
	}
	licenseUsage(stderr)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func licenseUsage(w io.Writer) {
	fmt.Fprint(w, `gallerist license — keys and offline checks of built-in License A licenses

  gallerist license keygen
      print a new Ed25519 key pair: the private key for the environment
      variable named by issuer.builtin.privateKeyEnv, the public key for the
      vendor's software
  gallerist license verify --public-key KEY [--file F | -]
      verify a license text (from a file, or - for standard input) with the
      public key, print its fields; exit 1 when it is not valid now
`)
}

// licenseKeygen prints a fresh key pair, one KEY=value line each.
func licenseKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("license keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	fmt.Fprintln(stderr, "# The private key goes into the environment variable that issuer.builtin.privateKeyEnv names; keep it secret.")
	fmt.Fprintln(stderr, "# The public key goes into the vendor's software (licensetoken.ParsePublicKey) and gallerist license verify --public-key.")
	fmt.Fprintf(stdout, "LICENSE_PRIVATE_KEY=%s\n", config.EncodeLicensePrivateKey(priv))
	fmt.Fprintf(stdout, "LICENSE_PUBLIC_KEY=%s\n", licensetoken.EncodePublicKey(pub))
	return nil
}

// licenseVerify checks a license text offline and prints its fields.
func licenseVerify(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("license verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pubText := fs.String("public-key", "", "the issuer's public key (what license keygen printed as LICENSE_PUBLIC_KEY; required)")
	file := fs.String("file", "", "read the license from this file (or give - to read standard input)")
	at := fs.String("at", "", "check validity at this time (RFC 3339) instead of now")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs, os.LookupEnv); err != nil {
		return err
	}
	if *pubText == "" {
		return errors.New("--public-key is required")
	}
	pub, err := licensetoken.ParsePublicKey(*pubText)
	if err != nil {
		return fmt.Errorf("--public-key: %w", err)
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			return fmt.Errorf("--at %q is not an RFC 3339 time", *at)
		}
	}
	var text []byte
	switch {
	case *file != "" && fs.NArg() > 0:
		return errors.New("give either --file F or -, not both")
	case *file != "":
		if text, err = readLimited(openFile(*file)); err != nil {
			return fmt.Errorf("--file %s: %w", *file, err)
		}
	case fs.NArg() == 1 && fs.Arg(0) == "-":
		if text, err = readLimited(stdin, nil); err != nil {
			return fmt.Errorf("standard input: %w", err)
		}
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q (use --file F, or - for standard input)", fs.Arg(0))
	default:
		return errors.New("give --file F, or - to read the license from standard input")
	}
	l, verr := licensetoken.Verify(pub, text, now)
	if verr != nil && !errors.Is(verr, licensetoken.ErrExpired) && !errors.Is(verr, licensetoken.ErrNotYetValid) {
		return verr
	}
	if verr != nil {
		fmt.Fprintln(stdout, "license authentic but not valid now")
	} else {
		fmt.Fprintln(stdout, "license valid")
	}
	printLicense(stdout, l)
	return verr
}

func openFile(path string) (io.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// readLimited reads at most licensetoken.MaxTextLen+1 bytes (Verify refuses
// longer texts) and closes r when it can.
func readLimited(r io.Reader, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	return io.ReadAll(io.LimitReader(r, licensetoken.MaxTextLen+1))
}

func printLicense(w io.Writer, l licensetoken.License) {
	row := func(name, v string) {
		if v != "" {
			fmt.Fprintf(w, "  %-11s %s\n", name+":", v)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	row("licenseId", l.ID)
	row("instanceId", l.InstanceID)
	row("orderId", l.OrderID)
	row("productId", l.ProductID)
	row("skuCode", l.SKUCode)
	row("customerId", l.CustomerID)
	row("issuedAt", ts(l.IssuedAt))
	row("notBefore", ts(l.NotBefore))
	row("notAfter", ts(l.NotAfter))
	if len(l.Features) > 0 {
		names := make([]string, 0, len(l.Features))
		for k := range l.Features {
			names = append(names, k)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, k := range names {
			parts[i] = k + "=" + l.Features[k]
		}
		row("features", strings.Join(parts, ", "))
	}
}
