package gcs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers/gcs"
	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// adcEnv clears what Application Default Credentials read and gives the
// process an empty home.
func adcEnv(t *testing.T) string {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("APPDATA", home)
	for _, k := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GCE_METADATA_HOST"} {
		t.Setenv(k, "")
	}
	return home
}

// authorizedUser is a gcloud user credential as `gcloud auth
// application-default login` writes it; reading one sends nothing.
const authorizedUser = `{"type":"authorized_user","client_id":"id.apps.googleusercontent.com","client_secret":"s","refresh_token":"r"}`

// TestNoMetadataServerOffGoogleCloud: without credentials files and without
// UseMetadataServer, Open refuses at once with ErrAccessDenied rather than
// let the client library probe the metadata server.
func TestNoMetadataServerOffGoogleCloud(t *testing.T) {
	adcEnv(t)
	cfg := gcs.DefaultConfig("data")
	cfg.Endpoint = objstoretest.UnreachableURL(t) + "/storage/v1/"
	start := time.Now()
	s, err := gcs.Open(context.Background(), cfg)
	if !errors.Is(err, objstore.ErrAccessDenied) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open without credentials = %v; want ErrAccessDenied", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusing took %s", d)
	}
	t.Log(err)
}

// TestCredentialsFiles: either credentials file that ADC reads before the
// metadata server lets Open go on (it sends nothing).
func TestCredentialsFiles(t *testing.T) {
	for _, where := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "gcloud"} {
		t.Run(where, func(t *testing.T) {
			home := adcEnv(t)
			file := filepath.Join(home, ".config", "gcloud", "application_default_credentials.json")
			if where == "GOOGLE_APPLICATION_CREDENTIALS" {
				file = filepath.Join(t.TempDir(), "key.json")
				t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
			}
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(authorizedUser), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := gcs.DefaultConfig("data")
			cfg.Endpoint = objstoretest.UnreachableURL(t) + "/storage/v1/"
			s, err := gcs.Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Open with %s: %v", where, err)
			}
			s.Close()
		})
	}
}
