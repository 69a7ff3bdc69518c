package s3

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// refusingClient returns an HTTP client that sends nothing: its dialer
// counts the connections the SDK tried and refuses them, so a test learns
// of any attempt to reach a metadata service without the attempt leaving
// the process.
func refusingClient(tried *atomic.Int64) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil
		tr.DialContext = func(_ context.Context, network, addr string) (net.Conn, error) {
			tried.Add(1)
			return nil, errors.New("refusingClient: the test allows no connection, got " + network + " " + addr)
		}
	})
}

// isolate keeps the machine's AWS configuration out of the SDK's chain.
func isolate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_EC2_METADATA_DISABLED"} {
		t.Setenv(k, "")
	}
}

// imdsState is the EC2 metadata client state that the options of cfg give
// the SDK's configuration.
func imdsState(t *testing.T, cfg Config) imds.ClientEnableState {
	var o config.LoadOptions
	var tried atomic.Int64
	for _, f := range loadOptions(cfg, refusingClient(&tried)) {
		if err := f(&o); err != nil {
			t.Fatal(err)
		}
	}
	return o.EC2IMDSClientEnableState
}

// TestIMDSOption: without UseIMDS (what tiers/backend leaves when
// detection says the machine is not EC2) the SDK's metadata client is
// disabled outright; with it, the SDK's default applies, which
// AWS_EC2_METADATA_DISABLED can still turn off.
func TestIMDSOption(t *testing.T) {
	cfg := DefaultConfig("b")
	if got := imdsState(t, cfg); got != imds.ClientDisabled {
		t.Fatalf("UseIMDS false: metadata client state %v, want ClientDisabled", got)
	}
	cfg.UseIMDS = true
	if got := imdsState(t, cfg); got != imds.ClientDefaultEnableState {
		t.Fatalf("UseIMDS true: metadata client state %v, want ClientDefaultEnableState", got)
	}
}

// TestNoIMDSInTheChain builds the SDK's configuration as Open does, with
// IMDS off, and asks its credential chain and metadata client for
// something: both refuse at once and nothing is sent.
func TestNoIMDSInTheChain(t *testing.T) {
	isolate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tried atomic.Int64
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOptions(DefaultConfig("b"), refusingClient(&tried))...)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, src := range awsCfg.ConfigSources {
		if lo, ok := src.(config.LoadOptions); ok {
			found = true
			if lo.EC2IMDSClientEnableState != imds.ClientDisabled {
				t.Fatalf("the configuration's load options: metadata client state %v", lo.EC2IMDSClientEnableState)
			}
		}
	}
	if !found {
		t.Fatal("no LoadOptions among the configuration's sources")
	}
	start := time.Now()
	if _, err := imds.NewFromConfig(awsCfg).GetRegion(ctx, nil); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("the metadata client answered %v; want it disabled", err)
	}
	if _, err := awsCfg.Credentials.Retrieve(ctx); err == nil {
		t.Fatal("the credential chain found credentials in an empty environment")
	} else {
		t.Logf("credential chain, as expected: %v", err)
	}
	if n := tried.Load(); n != 0 {
		t.Fatalf("the SDK tried %d requests with IMDS disabled", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusing took %s; something waited for a credential source", d)
	}
}
