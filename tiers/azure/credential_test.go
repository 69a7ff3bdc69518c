package azure_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/soullabs/brainy/tiers/azure"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// fakeCredential is a token credential that has no token.
type fakeCredential struct{}

func (fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("fakeCredential has no token")
}

// TestEntraIDByDefault: with an account and neither a connection string nor
// a key, Open builds an azidentity token credential: DefaultAzureCredential
// where a managed identity may answer, the chain without it elsewhere. Open
// sends nothing (the endpoint is a loopback port where nothing listens, and
// building the credentials asks no one).
func TestEntraIDByDefault(t *testing.T) {
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
		"AZURE_TOKEN_CREDENTIALS", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	endpoint := objstoretest.UnreachableURL(t) + "/acct"
	for _, c := range []struct {
		managedIdentity bool
		want            string
	}{
		{true, "*azidentity.DefaultAzureCredential"},
		{false, "*azidentity.ChainedTokenCredential"},
	} {
		start := time.Now()
		s, err := azure.Open(context.Background(), azure.Config{Container: "data", Account: "acct", Endpoint: endpoint,
			ManagedIdentity: c.managedIdentity})
		if err != nil {
			t.Fatalf("ManagedIdentity %v: Open: %v", c.managedIdentity, err)
		}
		if got := fmt.Sprintf("%T", s.Config().Credential); got != c.want {
			t.Fatalf("ManagedIdentity %v: credential %s, want %s", c.managedIdentity, got, c.want)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Open took %s: something waited for the network", d)
		}
		s.Close()
	}
	// A caller's credential is used as given.
	s, err := azure.Open(context.Background(), azure.Config{Container: "data", Account: "acct", Endpoint: endpoint,
		Credential: fakeCredential{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Config().Credential.(fakeCredential); !ok {
		t.Fatalf("credential %T, want the caller's", s.Config().Credential)
	}
}
