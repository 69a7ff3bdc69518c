package claim

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers/azure"
	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
	"github.com/soullabs/brainy/tiers/s3"
)

// The S3 and Azure cases run against versitygw and Azurite, provisioned by
// objstoretest unless BRAINY_TEST_S3_* / BRAINY_TEST_AZURE_* name running servers.
func TestMain(m *testing.M) { os.Exit(objstoretest.Main(m)) }

// stores are the backends every test runs on; each open returns an empty store
// (a fresh key prefix on the shared servers).
var stores = []struct {
	name string
	open func(t *testing.T) objstore.Store
}{
	{"memory", func(t *testing.T) objstore.Store { return objstore.NewMemory() }},
	{"dir", func(t *testing.T) objstore.Store {
		d, err := objstore.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}},
	{"s3", func(t *testing.T) objstore.Store {
		env := objstoretest.Use(t, objstoretest.S3)
		cfg := s3.LocalConfig(env["BRAINY_TEST_S3_ENDPOINT"], env["BRAINY_TEST_S3_BUCKET"],
			env["BRAINY_TEST_S3_ACCESS_KEY"], env["BRAINY_TEST_S3_SECRET_KEY"])
		cfg.Region = env["BRAINY_TEST_S3_REGION"]
		cfg.Prefix = "claim-" + rand.Text()[:12] + "/"
		s, err := s3.Open(context.Background(), cfg)
		if err != nil {
			t.Fatalf("s3.Open: %v", err)
		}
		return cleanup(t, s)
	}},
	{"azure", func(t *testing.T) objstore.Store {
		env := objstoretest.Use(t, objstoretest.Azurite)
		s, err := azure.Open(context.Background(), azure.Config{
			Account:         env["BRAINY_TEST_AZURE_ACCOUNT"],
			AccountKey:      env["BRAINY_TEST_AZURE_KEY"],
			Endpoint:        env["BRAINY_TEST_AZURE_ENDPOINT"],
			Container:       "claim-test",
			CreateContainer: true,
			Prefix:          "claim-" + strings.ToLower(rand.Text()[:12]) + "/",
			RetryDelay:      50 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("azure.Open: %v", err)
		}
		return cleanup(t, s)
	}},
}

// cleanup removes what the test wrote and closes s when the test ends.
func cleanup(t *testing.T, s objstore.Store) objstore.Store {
	objstoretest.Cleanup(t, s)
	return s
}

// eachStore runs fn on every backend, in parallel: the tests mostly wait out
// TTLs.
func eachStore(t *testing.T, fn func(t *testing.T, objs objstore.Store)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			fn(t, st.open(t))
		})
	}
}
