// Package certreload serves a TLS key pair from files and picks up new
// ones without a restart, for the listeners that take a certificate and
// key file.
package certreload

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader serves a TLS key pair from files and picks up new ones
// without a restart: on a handshake, when at least a second has passed
// since it last looked, it reads the files again if their modification
// times changed; Reload reads them at once (for SIGHUP). A pair that fails
// to load keeps the previous one in service and is reported by Reload.
type Reloader struct {
	certFile, keyFile string

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	checkedAt time.Time
}

// New loads the pair once; an error means it cannot be used.
func New(certFile, keyFile string) (*Reloader, error) {
	c := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads both files now.
func (c *Reloader) Reload() error {
	certMod, keyMod, err := c.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS key pair: %w", err)
	}
	c.mu.Lock()
	c.cert, c.certMod, c.keyMod, c.checkedAt = &cert, certMod, keyMod, time.Now()
	c.mu.Unlock()
	return nil
}

func (c *Reloader) modTimes() (time.Time, time.Time, error) {
	ci, err := os.Stat(c.certFile)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("TLS certificate: %w", err)
	}
	ki, err := os.Stat(c.keyFile)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("TLS key: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	stale := time.Since(c.checkedAt) >= time.Second
	if stale {
		c.checkedAt = time.Now()
	}
	cert, certMod, keyMod := c.cert, c.certMod, c.keyMod
	c.mu.Unlock()
	if stale {
		if cm, km, err := c.modTimes(); err == nil && (!cm.Equal(certMod) || !km.Equal(keyMod)) {
			if c.Reload() == nil {
				c.mu.Lock()
				cert = c.cert
				c.mu.Unlock()
			}
		}
	}
	return cert, nil
}

// TLSConfig returns a server configuration over the reloader: TLS 1.2 or
// later, HTTP/2 and HTTP/1.1 offered.
func (c *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: c.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
