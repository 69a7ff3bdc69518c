package azure_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers/azure"
	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// The tests run against the Blob service named by BRAINY_TEST_AZURE_*; without them,
// objstoretest provisions Azurite with scripts/services/start-azurite.sh and TestMain
// stops it afterwards when this package started it.
func TestMain(m *testing.M) { os.Exit(objstoretest.Main(m)) }

// testConfig returns a configuration for a fresh container on the test server.
func testConfig(t testing.TB) azure.Config {
	env := objstoretest.Use(t, objstoretest.Azurite)
	return azure.Config{
		Account:         env["BRAINY_TEST_AZURE_ACCOUNT"],
		AccountKey:      env["BRAINY_TEST_AZURE_KEY"],
		Endpoint:        env["BRAINY_TEST_AZURE_ENDPOINT"],
		Container:       "test-" + strings.ToLower(rand.Text()[:12]),
		CreateContainer: true,
		RetryDelay:      50 * time.Millisecond,
	}
}

func open(t testing.TB, cfg azure.Config) *azure.Store {
	s, err := azure.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		_ = s.DeleteContainer(context.Background())
		s.Close()
	})
	return s
}

func TestConformance(t *testing.T) {
	objstoretest.Use(t, objstoretest.Azurite) // fail (CI) or skip once, not per case
	objstoretest.Run(t, objstoretest.Harness{
		New: func(t *testing.T) objstore.Store {
			cfg := testConfig(t)
			cfg.ListPageSize = 50
			return open(t, cfg)
		},
		ListPageSize: 50,
		NewUnauthorized: func(t *testing.T) objstore.Store {
			cfg := testConfig(t)
			open(t, cfg) // the container exists; only the credentials are wrong
			cfg.CreateContainer = false
			cfg.AccountKey = base64.StdEncoding.EncodeToString([]byte("not the account key"))
			s, err := azure.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		NewUnreachable: func(t *testing.T) objstore.Store {
			cfg := testConfig(t)
			cfg.Endpoint = objstoretest.UnreachableURL(t) + "/" + cfg.Account
			cfg.CreateContainer = false
			cfg.MaxAttempts = 1
			s, err := azure.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

// TestConnectionString opens the store from the connection string the start script
// exports, the form users most often have.
func TestConnectionString(t *testing.T) {
	env := objstoretest.Use(t, objstoretest.Azurite)
	cfg := azure.DefaultConfig(env["BRAINY_TEST_AZURE_CONNSTR"], "test-connstr")
	cfg.CreateContainer = true
	s := open(t, cfg)
	ctx := context.Background()
	etag, err := s.Put(ctx, "k", []byte("v"), objstore.Cond{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	got, etag2, err := s.Get(ctx, "k")
	if err != nil || string(got) != "v" || etag2 != etag {
		t.Fatalf("Get = %q, %s, %v; want v, %s", got, etag2, err, etag)
	}
}

// BenchmarkAzure measures Put and Get against the test server:
//
//	go test -run '^$' -bench . -benchmem ./tiers/azure
func BenchmarkAzure(b *testing.B) {
	objstoretest.Bench(b, func(b *testing.B) objstore.Store { return open(b, testConfig(b)) })
}
