package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/soullabs/brainy/tiers/objstore"
)

// isolateAzureEnv clears the variables azidentity's credentials read, so
// the machine's configuration does not leak into a test.
func isolateAzureEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
		"AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT",
		"MSI_SECRET", "IMDS_ENDPOINT"} {
		t.Setenv(k, "")
		os.Unsetenv(k) // azidentity tells unset from empty (os.LookupEnv)
	}
}

// TestChainWithoutManagedIdentity: off Azure the default credential is
// DefaultAzureCredential's chain in its order with the managed identity, the
// member that asks 169.254.169.254, left out.
func TestChainWithoutManagedIdentity(t *testing.T) {
	isolateAzureEnv(t)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("a.b.c"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", tok)
	t.Setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
	t.Setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000002")
	var types []string
	for _, c := range chainWithoutManagedIdentity() {
		if _, ok := c.(*azidentity.ManagedIdentityCredential); ok {
			t.Fatal("the chain holds a ManagedIdentityCredential")
		}
		types = append(types, fmt.Sprintf("%T", c))
	}
	got := strings.Join(types, " ")
	want := "*azidentity.WorkloadIdentityCredential *azidentity.AzureCLICredential *azidentity.AzureDeveloperCLICredential *azidentity.AzurePowerShellCredential"
	if got != want {
		t.Fatalf("chain %s, want %s", got, want)
	}
	// AZURE_TOKEN_CREDENTIALS is the user's own choice of members.
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "WorkloadIdentityCredential")
	c, err := defaultCredential(false)
	if _, ok := c.(*azidentity.DefaultAzureCredential); !ok || err != nil {
		t.Fatalf("with AZURE_TOKEN_CREDENTIALS: %T, %v; want *azidentity.DefaultAzureCredential", c, err)
	}
}

// staticToken is a token credential that hands out one token, or an error.
type staticToken struct {
	token string
	err   error
	calls *atomic.Int64
}

func (s staticToken) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.calls.Add(1)
	if s.err != nil {
		return azcore.AccessToken{}, s.err
	}
	if len(opts.Scopes) != 1 || opts.Scopes[0] != "https://storage.azure.com/.default" {
		return azcore.AccessToken{}, fmt.Errorf("asked for scopes %v", opts.Scopes)
	}
	return azcore.AccessToken{Token: s.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestTokenCredentialRequests: a store with a token credential sends the
// token as a bearer on every request (here to a loopback TLS server that
// plays Put Blob and Get Blob), and a credential that fails is
// ErrAccessDenied with nothing sent.
func TestTokenCredentialRequests(t *testing.T) {
	var requests atomic.Int64
	var blob []byte
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if got := r.Header.Get("Authorization"); got != "Bearer the-token" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/acct/data/p/") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("ETag", `"0x1"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		switch r.Method {
		case http.MethodPut:
			var err error
			if blob, err = io.ReadAll(r.Body); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
		case http.MethodGet:
			w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
			w.Header().Set("x-ms-blob-type", "BlockBlob")
			w.WriteHeader(http.StatusOK)
			w.Write(blob)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	var calls atomic.Int64
	cfg := Config{Container: "data", Prefix: "p/", Account: "acct", Endpoint: srv.URL + "/acct", MaxAttempts: 1,
		Credential: staticToken{token: "the-token", calls: &calls}}
	s, err := open(ctx, cfg, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "k", []byte("v"), objstore.Cond{}); err != nil {
		t.Fatalf("Put with a token: %v", err)
	}
	if got, _, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get with a token: %q, %v", got, err)
	}
	if calls.Load() == 0 {
		t.Fatal("the credential was never asked")
	}

	before := requests.Load()
	cfg.Credential = staticToken{err: errors.New("no identity here"), calls: &calls}
	s, err = open(ctx, cfg, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, "k", []byte("v"), objstore.Cond{})
	if !errors.Is(err, objstore.ErrAccessDenied) || !strings.Contains(err.Error(), "no identity here") {
		t.Fatalf("Put with a failing credential: %v; want ErrAccessDenied with the credential's reason", err)
	}
	if n := requests.Load() - before; n != 0 {
		t.Fatalf("a failing credential still sent %d requests", n)
	}
}
