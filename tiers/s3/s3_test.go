package s3_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
	"github.com/soullabs/brainy/tiers/s3"
)

// The tests run against the S3-compatible server named by BRAINY_TEST_S3_*; without
// them, objstoretest provisions versitygw with scripts/services/start-s3.sh and TestMain
// stops it afterwards when this package started it.
func TestMain(m *testing.M) { os.Exit(objstoretest.Main(m)) }

// testConfig returns a configuration for the test server with a fresh key prefix.
func testConfig(t testing.TB) s3.Config {
	env := objstoretest.Use(t, objstoretest.S3)
	cfg := s3.LocalConfig(env["BRAINY_TEST_S3_ENDPOINT"], env["BRAINY_TEST_S3_BUCKET"],
		env["BRAINY_TEST_S3_ACCESS_KEY"], env["BRAINY_TEST_S3_SECRET_KEY"])
	cfg.Region = env["BRAINY_TEST_S3_REGION"]
	cfg.Prefix = fmt.Sprintf("test-%s/", rand.Text()[:12])
	return cfg
}

func open(t testing.TB, cfg s3.Config) *s3.Store {
	s, err := s3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	objstoretest.Cleanup(t, s)
	return s
}

func TestConformance(t *testing.T) {
	objstoretest.Use(t, objstoretest.S3) // fail (CI) or skip once, not per case
	objstoretest.Run(t, objstoretest.Harness{
		New: func(t *testing.T) objstore.Store {
			cfg := testConfig(t)
			cfg.ListPageSize = 50
			return open(t, cfg)
		},
		ListPageSize: 50,
		NewUnauthorized: func(t *testing.T) objstore.Store {
			cfg := testConfig(t)
			cfg.SecretAccessKey = "not-the-secret"
			return open(t, cfg)
		},
		NewUnreachable: func(t *testing.T) objstore.Store {
			cfg := testConfig(t)
			cfg.Endpoint = objstoretest.UnreachableURL(t)
			cfg.MaxAttempts = 1
			s, err := s3.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

// BenchmarkS3 measures Put and Get against the test server:
//
//	go test -run '^$' -bench . -benchmem ./tiers/s3
func BenchmarkS3(b *testing.B) {
	objstoretest.Bench(b, func(b *testing.B) objstore.Store { return open(b, testConfig(b)) })
}
