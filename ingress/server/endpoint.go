package server

import (
	"fmt"
	"sync"

	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// endpoint is one configured production route, with its keys decoded and
// its AES ciphers derived once at start.
type endpoint struct {
	route config.Route
	// nonceScope is the route's nonce scope in the shared replay guard.
	nonceScope string
	// formSeen marks the signature forms already logged for this route.
	formSeen sync.Map
	keys     [][]byte
	ciphers  []*koogallery.Cipher
	verifier *koogallery.V2Verifier
	encrypt  koogallery.EncryptType
}

func newEndpoint(r config.Route, opts Options) (*endpoint, error) {
	ep := &endpoint{route: r, encrypt: koogallery.EncryptType(r.Encrypt()), nonceScope: scope(r.Path)}
	for i, k := range r.Keys {
		b, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("route %s: keys[%d]: %w", r.Path, i, err)
		}
		c, err := koogallery.NewCipher(b, ep.encrypt)
		if err != nil {
			return nil, fmt.Errorf("route %s: keys[%d]: %w", r.Path, i, err)
		}
		ep.keys = append(ep.keys, b)
		ep.ciphers = append(ep.ciphers, c)
	}
	ep.verifier = &koogallery.V2Verifier{
		Keys: ep.keys, Window: r.Window(), AllowPlainSHA256: r.AllowPlainSHA256, Now: opts.Now,
	}
	return ep, nil
}
