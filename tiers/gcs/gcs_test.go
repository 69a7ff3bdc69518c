package gcs_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/soullabs/brainy/tiers/gcs"
	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// The tests run against the emulator named by BRAINY_TEST_GCS_*; without them,
// objstoretest provisions fake-gcs-server with scripts/services/start-gcs.sh and TestMain
// stops it afterwards when this package started it.
func TestMain(m *testing.M) { os.Exit(objstoretest.Main(m)) }

// testConfig returns a configuration for the test emulator with a fresh key prefix.
func testConfig(t testing.TB) gcs.Config {
	env := objstoretest.Use(t, objstoretest.GCS)
	cfg := gcs.EmulatorConfig(env["BRAINY_TEST_GCS_EMULATOR_HOST"], env["BRAINY_TEST_GCS_BUCKET"])
	cfg.Prefix = "test-" + strings.ToLower(rand.Text()[:12]) + "/"
	return cfg
}

func open(t testing.TB, cfg gcs.Config) *gcs.Store {
	s, err := gcs.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	objstoretest.Cleanup(t, s)
	return s
}

func TestConformance(t *testing.T) {
	objstoretest.Use(t, objstoretest.GCS) // fail (CI) or skip once, not per case
	objstoretest.Run(t, objstoretest.Harness{
		New: func(t *testing.T) objstore.Store {
			cfg := testConfig(t)
			cfg.ListPageSize = 50
			return open(t, cfg)
		},
		ListPageSize: 50,
		// fake-gcs-server does not check credentials: no AccessDenied case.
		NewUnreachable: func(t *testing.T) objstore.Store {
			cfg := testConfig(t)
			cfg.Endpoint = objstoretest.UnreachableURL(t) + "/storage/v1/"
			cfg.MaxAttempts = 1
			s, err := gcs.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	})
}

// BenchmarkGCS measures Put and Get against the test emulator:
//
//	go test -run '^$' -bench . -benchmem ./tiers/gcs
func BenchmarkGCS(b *testing.B) {
	objstoretest.Bench(b, func(b *testing.B) objstore.Store { return open(b, testConfig(b)) })
}
