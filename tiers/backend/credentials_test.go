package backend

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soullabs/brainy/internal/cloudenv"
	"github.com/soullabs/brainy/tiers/azure"
	"github.com/soullabs/brainy/tiers/gcs"
	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/s3"
)

// detectionEnv are the variables that decide cloud:// and detection; tests
// clear them so that the machine's do not leak in.
var detectionEnv = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL",
	"AWS_ENDPOINT_URL_S3", "AWS_EC2_METADATA_DISABLED",
	"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT", "AZURE_FEDERATED_TOKEN_FILE",
	"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_TOKEN_CREDENTIALS", "IDENTITY_ENDPOINT",
	"MSI_ENDPOINT",
	"GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GCE_METADATA_HOST", "K_SERVICE", "CLOUD_RUN_JOB",
	"GAE_APPLICATION",
}

// fakeMachine points provider detection at a fake root holding files
// (path -> content, e.g. the DMI strings), clears the variables that
// decide it, and isolates the AWS SDK from the machine's configuration.
// Variables the test then sets with t.Setenv are seen as usual.
func fakeMachine(t *testing.T, files map[string]string) {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range detectionEnv {
		t.Setenv(k, "")
		os.Unsetenv(k) // azidentity tells unset from empty
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "aws-credentials"))
	saved := detectConfig
	detectConfig = cloudenv.Config{Root: root}
	t.Cleanup(func() { detectConfig = saved })
}

const dmi = "/sys/class/dmi/id/"

// The DMI strings of each cloud's virtual machines.
var (
	ec2   = map[string]string{dmi + "sys_vendor": "Amazon EC2\n", dmi + "product_name": "m6i.large\n", dmi + "bios_vendor": "Amazon EC2\n"}
	gce   = map[string]string{dmi + "sys_vendor": "Google\n", dmi + "product_name": "Google Compute Engine\n", dmi + "bios_vendor": "Google\n"}
	azvm  = map[string]string{dmi + "sys_vendor": "Microsoft Corporation\n", dmi + "product_name": "Virtual Machine\n", dmi + "chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77\n"}
	metal = map[string]string{dmi + "sys_vendor": "Dell Inc.\n", dmi + "product_name": "PowerEdge R640\n"}
)

func TestCloudDetectsProvider(t *testing.T) {
	for _, c := range []struct {
		name    string
		files   map[string]string
		env     map[string]string
		url     string // "" wants an error
		chosen  string // substring of Spec.Chosen, or of the error
		noFiles bool
	}{
		{name: "ec2", files: ec2, url: "s3://bucket/p", chosen: "provider aws detected from /sys/class/dmi/id/sys_vendor=Amazon EC2"},
		{name: "gce", files: gce, url: "gs://bucket/p", chosen: "provider gcp detected from /sys/class/dmi/id/sys_vendor=Google"},
		{name: "azure vm", files: azvm, url: "azure://bucket/p", chosen: "chassis_asset_tag=7783-7084-3265-9085-8269-3286-77"},
		{name: "bare metal", files: metal, chosen: "detected no cloud"},
		{name: "kubernetes elsewhere", files: map[string]string{cloudenv.KubernetesTokenPath: "t"}, chosen: "detected no cloud"},
		{name: "gke", files: map[string]string{dmi + "product_name": "Google Compute Engine\n", cloudenv.KubernetesTokenPath: "t"},
			url: "gs://bucket/p", chosen: "in a Kubernetes pod"},
		{name: "aks workload identity", files: map[string]string{cloudenv.KubernetesTokenPath: "t"},
			env: map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "TOKEN", "AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t"},
			url: "azure://bucket/p", chosen: "AZURE_FEDERATED_TOKEN_FILE="},
		// Credentials the environment names win over the machine.
		{name: "aws profile on gce", files: gce, env: map[string]string{"AWS_PROFILE": "prod"}, url: "s3://bucket/p", chosen: "AWS_PROFILE is set"},
		{name: "two workload identities", env: map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "TOKEN", "AZURE_CLIENT_ID": "c",
			"AZURE_TENANT_ID": "t", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}, chosen: "ambiguous"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeMachine(t, c.files)
			tok := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tok, []byte("a.b.c"), 0o600); err != nil {
				t.Fatal(err)
			}
			for k, v := range c.env {
				t.Setenv(k, strings.ReplaceAll(v, "TOKEN", tok))
			}
			spec, err := Parse("cloud://bucket/p")
			if c.url == "" {
				if err == nil || !strings.Contains(err.Error(), c.chosen) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("Parse = %+v, %v; want one line containing %q", spec, err, c.chosen)
				}
				t.Log(err)
				return
			}
			if err != nil || spec.URL != c.url || !strings.Contains(spec.Chosen, c.chosen) {
				t.Fatalf("Parse = %+v, %v; want %s chosen because %q", spec, err, c.url, c.chosen)
			}
		})
	}
}

// openLogged opens the object store of raw, and returns it with what it
// logged.
func openLogged(t *testing.T, raw string) (objstore.Store, string) {
	t.Helper()
	var logs bytes.Buffer
	st, err := OpenObjects(context.Background(), raw, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("OpenObjects(%s): %v", raw, err)
	}
	t.Cleanup(func() { st.Close() })
	return st, logs.String()
}

// unreachable is a loopback address where nothing listens: the stores
// below send nothing, and if they did, nothing would answer.
func unreachable(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// TestS3IMDSFollowsDetection: the S3 SDK may ask the EC2 metadata service
// only on an EC2 machine, for AWS's endpoints, unless ?imds= says
// otherwise; the log names the provider and the evidence.
func TestS3IMDSFollowsDetection(t *testing.T) {
	local := unreachable(t)
	for _, c := range []struct {
		name  string
		files map[string]string
		url   string
		imds  bool
		log   string
	}{
		{"ec2", ec2, "s3://bucket/p", true, "credentials: provider aws detected from /sys/class/dmi/id/sys_vendor=Amazon EC2"},
		{"ec2, regional endpoint", ec2, "s3://bucket/p?endpoint=https://s3.eu-west-1.amazonaws.com", true, "imds=true"},
		{"ec2, other endpoint", ec2, "s3://bucket/p?endpoint=" + local, false, "decided_by=detection"},
		{"ec2, imds=false", ec2, "s3://bucket/p?imds=false", false, "decided_by=url"},
		{"ec2, r2", ec2, "r2://bucket/p?account=abc", false, "provider aws detected"},
		{"gce", gce, "s3://bucket/p", false, "provider gcp detected"},
		{"azure", azvm, "s3://bucket/p", false, "provider azure detected"},
		{"nothing", metal, "s3://bucket/p", false, "no provider detected"},
		{"nothing, imds=true", nil, "s3://bucket/p?imds=true", true, "decided_by=url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeMachine(t, c.files)
			st, logs := openLogged(t, c.url)
			if got := st.(*s3.Store).Config().UseIMDS; got != c.imds {
				t.Fatalf("UseIMDS = %v, want %v; logs:\n%s", got, c.imds, logs)
			}
			if !strings.Contains(logs, c.log) || !strings.Contains(logs, fmt.Sprintf("imds=%v", c.imds)) {
				t.Fatalf("logs do not say %q:\n%s", c.log, logs)
			}
		})
	}
	// IRSA on EKS: web identity comes first in the chain; the node is still
	// EC2, so the instance role stays the fallback.
	fakeMachine(t, ec2)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("a.b.c"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tok)
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/brainy")
	st, logs := openLogged(t, "s3://bucket/p")
	if !st.(*s3.Store).Config().UseIMDS || !strings.Contains(logs, "AWS_WEB_IDENTITY_TOKEN_FILE="+tok) {
		t.Fatalf("IRSA on EC2: UseIMDS %v; logs:\n%s", st.(*s3.Store).Config().UseIMDS, logs)
	}
}

// TestGCSMetadataFollowsDetection: Application Default Credentials may
// fall back to the metadata server only where Google Cloud is detected.
// The stores are anonymous, so opening them looks for no credentials.
func TestGCSMetadataFollowsDetection(t *testing.T) {
	base := "gs://bucket/p?anonymous=true&endpoint=" + unreachable(t) + "/storage/v1/"
	for _, c := range []struct {
		name     string
		files    map[string]string
		env      map[string]string
		params   string
		metadata bool
	}{
		{"gce", gce, nil, "", true},
		{"cloud run", nil, map[string]string{"K_SERVICE": "api"}, "", true},
		{"ec2", ec2, nil, "", false},
		{"nothing", nil, nil, "", false},
		{"gce, metadata_server=false", gce, nil, "&metadata_server=false", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeMachine(t, c.files)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			st, logs := openLogged(t, base+c.params)
			if got := st.(*gcs.Store).Config().UseMetadataServer; got != c.metadata {
				t.Fatalf("UseMetadataServer = %v, want %v; logs:\n%s", got, c.metadata, logs)
			}
		})
	}
}

// TestAzureTokenCredentialFollowsDetection: without a connection string
// or key the Azure store is built with an azidentity token credential,
// DefaultAzureCredential (managed identity included) on Azure and the
// chain without the managed identity elsewhere. Building it sends nothing.
func TestAzureTokenCredentialFollowsDetection(t *testing.T) {
	endpoint := unreachable(t) + "/acct"
	for _, c := range []struct {
		name    string
		files   map[string]string
		env     map[string]string
		params  string
		managed bool
		cred    string // %T of the credential; "" for none (shared key)
	}{
		{"azure vm", azvm, nil, "", true, "*azidentity.DefaultAzureCredential"},
		{"app service", nil, map[string]string{"IDENTITY_ENDPOINT": "http://localhost:42356/msi/token"}, "", true, "*azidentity.DefaultAzureCredential"},
		{"ec2", ec2, nil, "", false, "*azidentity.ChainedTokenCredential"},
		{"nothing", nil, nil, "", false, "*azidentity.ChainedTokenCredential"},
		{"nothing, managed_identity=true", nil, nil, "&managed_identity=true", true, "*azidentity.DefaultAzureCredential"},
		{"account from the environment", azvm, map[string]string{"AZURE_STORAGE_ACCOUNT": "acct"}, "", true, "*azidentity.DefaultAzureCredential"},
		{"shared key", azvm, map[string]string{"AZURE_STORAGE_KEY": "a2V5"}, "", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeMachine(t, c.files)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			raw := "azure://data/p?endpoint=" + endpoint + c.params
			if c.env["AZURE_STORAGE_ACCOUNT"] == "" {
				raw += "&account=acct"
			}
			st, logs := openLogged(t, raw)
			cfg := st.(*azure.Store).Config()
			cred := ""
			if cfg.Credential != nil {
				cred = fmt.Sprintf("%T", cfg.Credential)
			}
			if cred != c.cred || cfg.ManagedIdentity != c.managed || cfg.Account != "acct" {
				t.Fatalf("credential %q, ManagedIdentity %v, account %q; want %q, %v, acct; logs:\n%s",
					cred, cfg.ManagedIdentity, cfg.Account, c.cred, c.managed, logs)
			}
		})
	}
}
