package s3_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers/objstore"
)

// chainEnv isolates the SDK's default credential chain from the machine: no shared
// config files, no environment credentials.
func chainEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_EC2_METADATA_DISABLED"} {
		t.Setenv(k, "")
	}
}

// TestCredentialChain opens the store without static credentials: the SDK's chain finds
// them in the environment.
func TestCredentialChain(t *testing.T) {
	cfg := testConfig(t)
	chainEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", cfg.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cfg.SecretAccessKey)
	cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
	s := open(t, cfg)
	if _, err := s.Put(context.Background(), "k", []byte("v"), objstore.Cond{}); err != nil {
		t.Fatalf("Put with chain credentials: %v", err)
	}
}

// TestNoCredentialsNoIMDS checks that with no credentials anywhere the store fails fast
// with ErrAccessDenied instead of asking the EC2 metadata service (which off EC2 costs a
// timeout, and on EC2 would pick up the instance's role unasked).
func TestNoCredentialsNoIMDS(t *testing.T) {
	cfg := testConfig(t)
	chainEnv(t)
	cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
	s := open(t, cfg)
	start := time.Now()
	_, err := s.Put(context.Background(), "k", []byte("v"), objstore.Cond{})
	if !errors.Is(err, objstore.ErrAccessDenied) {
		t.Fatalf("Put without credentials: err = %v, want ErrAccessDenied", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Put without credentials took %s; something waited for a credential source", d)
	}
	t.Logf("%v", err)
}
