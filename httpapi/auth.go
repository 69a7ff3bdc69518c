package httpapi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/soullabs/brainy/internal/item"
)

// APIKeys maps API keys to tenants. Keys are held as SHA-256 digests, so a
// lookup's timing says nothing about how much of a guessed key was right.
type APIKeys struct {
	tenants map[[32]byte]string
	admins  map[[32]byte]bool // keys that may also read the node's metrics
}

// LoadAPIKeys reads an API key file (ParseAPIKeys); an empty path means
// no keys: authentication off.
func LoadAPIKeys(path string, lim *item.Limits) (*APIKeys, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("API keys: %w", err)
	}
	defer f.Close()
	keys, err := ParseAPIKeys(f, lim)
	if err != nil {
		return nil, fmt.Errorf("API keys %s: %w", path, err)
	}
	return keys, nil
}

// MinAPIKeyLength bounds how short a key may be: shorter keys are guessable.
const MinAPIKeyLength = 16

// ParseAPIKeys reads an API key file: one "KEY TENANT" pair per line,
// separated by blanks, optionally followed by "admin" for a key that may
// also read the node's metrics (/v1/metrics, /metrics: every tenant's
// counts and the cluster's addresses); blank lines and lines starting
// with # are ignored. Every problem is reported with its line number.
func ParseAPIKeys(r io.Reader, lim *item.Limits) (*APIKeys, error) {
	keys := &APIKeys{tenants: map[[32]byte]string{}, admins: map[[32]byte]bool{}}
	sc := bufio.NewScanner(r)
	var problems []string
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Fields(text)
		admin := len(fields) == 3 && fields[2] == "admin"
		if len(fields) != 2 && !admin {
			problems = append(problems, fmt.Sprintf("line %d: want \"KEY TENANT\" or \"KEY TENANT admin\", got %q", line, strings.Join(fields[min(2, len(fields)):], " ")))
			continue
		}
		key, tenant := fields[0], fields[1]
		if len(key) < MinAPIKeyLength {
			problems = append(problems, fmt.Sprintf("line %d: the key is %d characters, the minimum is %d", line, len(key), MinAPIKeyLength))
			continue
		}
		if err := lim.CheckTenant(tenant); err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", line, err))
			continue
		}
		sum := sha256.Sum256([]byte(key))
		if _, dup := keys.tenants[sum]; dup {
			problems = append(problems, fmt.Sprintf("line %d: duplicate key", line))
			continue
		}
		keys.tenants[sum] = tenant
		if admin {
			keys.admins[sum] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("httpapi: reading API keys: %w", err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("httpapi: API keys: %s", strings.Join(problems, "; "))
	}
	if len(keys.tenants) == 0 {
		return nil, fmt.Errorf("httpapi: API keys: the file holds no keys")
	}
	return keys, nil
}

// Len returns the number of keys.
func (k *APIKeys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.tenants)
}

// tenant returns the tenant of the bearer token in an Authorization header.
func (k *APIKeys) tenant(authorization []byte) (string, bool) {
	sum, ok := bearer(authorization)
	if !ok {
		return "", false
	}
	t, ok := k.tenants[sum]
	return t, ok
}

// admin reports whether the bearer token in an Authorization header is an
// admin key.
func (k *APIKeys) admin(authorization []byte) bool {
	sum, ok := bearer(authorization)
	return ok && k.admins[sum]
}

func bearer(authorization []byte) ([32]byte, bool) {
	const scheme = "bearer "
	if len(authorization) <= len(scheme) || !bytes.EqualFold(authorization[:len(scheme)], []byte(scheme)) {
		return [32]byte{}, false
	}
	return sha256.Sum256(bytes.TrimSpace(authorization[len(scheme):])), true
}
