package cloudenv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soullabs/brainy/internal/cloudenv"
)

// fakeMachine is a root directory with the given files (path under the root
// -> content) and an environment of exactly env.
func fakeMachine(t *testing.T, files, env map[string]string) cloudenv.Config {
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
	return cloudenv.Config{Root: root, Getenv: func(k string) string { return env[k] }}
}

// tokenFile writes a token outside the fake root, as the webhooks mount them
// at paths the environment names.
func tokenFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("header.payload.signature"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const dmi = "/sys/class/dmi/id/"

func TestDetect(t *testing.T) {
	tok := tokenFile(t)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		name         string
		files, env   map[string]string
		provider     cloudenv.Provider
		evidence     string // substring of Evidence
		machine      cloudenv.Provider
		conflict, k8 bool
	}{
		{name: "bare metal", files: map[string]string{dmi + "sys_vendor": "Dell Inc.\n", dmi + "product_name": "PowerEdge R640\n"}},
		{name: "nothing at all"},
		{name: "ec2 nitro", files: map[string]string{dmi + "sys_vendor": "Amazon EC2\n", dmi + "product_name": "m6i.large\n"},
			provider: cloudenv.AWS, evidence: "/sys/class/dmi/id/sys_vendor=Amazon EC2", machine: cloudenv.AWS},
		{name: "ec2 bios vendor", files: map[string]string{dmi + "bios_vendor": "Amazon EC2\n"},
			provider: cloudenv.AWS, evidence: "bios_vendor=Amazon EC2", machine: cloudenv.AWS},
		{name: "ec2 xen", files: map[string]string{dmi + "sys_vendor": "Xen\n", dmi + "product_name": "HVM domU\n", dmi + "bios_version": "4.11.amazon\n"},
			provider: cloudenv.AWS, evidence: "bios_version=4.11.amazon", machine: cloudenv.AWS},
		{name: "plain xen", files: map[string]string{dmi + "sys_vendor": "Xen\n", dmi + "bios_version": "4.11\n"}},
		{name: "gce", files: map[string]string{dmi + "sys_vendor": "Google\n", dmi + "product_name": "Google Compute Engine\n", dmi + "bios_vendor": "Google\n"},
			provider: cloudenv.GCP, evidence: "sys_vendor=Google", machine: cloudenv.GCP},
		{name: "gce product only", files: map[string]string{dmi + "product_name": "Google Compute Engine\n"},
			provider: cloudenv.GCP, evidence: "product_name=Google Compute Engine", machine: cloudenv.GCP},
		{name: "azure", files: map[string]string{dmi + "sys_vendor": "Microsoft Corporation\n", dmi + "product_name": "Virtual Machine\n",
			dmi + "chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77\n"},
			provider: cloudenv.Azure, evidence: "chassis_asset_tag=7783-7084-3265-9085-8269-3286-77", machine: cloudenv.Azure},
		{name: "hyper-v is not azure", files: map[string]string{dmi + "sys_vendor": "Microsoft Corporation\n",
			dmi + "chassis_asset_tag": "0000-0000-0000-0000-0000-0000-00\n"}},
		{name: "irsa", env: map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": tok, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"},
			provider: cloudenv.AWS, evidence: "AWS_WEB_IDENTITY_TOKEN_FILE=" + tok},
		{name: "irsa without role", env: map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": tok}},
		{name: "irsa token missing", env: map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": missing, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}},
		{name: "ecs or eks pod identity", env: map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials"},
			provider: cloudenv.AWS, evidence: "AWS_CONTAINER_CREDENTIALS_FULL_URI="},
		{name: "azure workload identity", env: map[string]string{"AZURE_FEDERATED_TOKEN_FILE": tok, "AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t"},
			provider: cloudenv.Azure, evidence: "AZURE_FEDERATED_TOKEN_FILE=" + tok},
		{name: "azure workload identity without tenant", env: map[string]string{"AZURE_FEDERATED_TOKEN_FILE": tok, "AZURE_CLIENT_ID": "c"}},
		{name: "app service", env: map[string]string{"IDENTITY_ENDPOINT": "http://localhost:42356/msi/token"},
			provider: cloudenv.Azure, evidence: "IDENTITY_ENDPOINT="},
		{name: "google credentials file", env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": tok},
			provider: cloudenv.GCP, evidence: "GOOGLE_APPLICATION_CREDENTIALS=" + tok},
		{name: "google credentials file missing", env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": missing}},
		// GKE: the node's DMI, and a pod's service-account token.
		{name: "gke", files: map[string]string{dmi + "product_name": "Google Compute Engine\n", cloudenv.KubernetesTokenPath: "t"},
			provider: cloudenv.GCP, evidence: "product_name=Google Compute Engine", machine: cloudenv.GCP, k8: true},
		// EKS with IRSA: the workload's role wins over the node's, and the
		// machine is still EC2 (its metadata service exists).
		{name: "eks with irsa", files: map[string]string{dmi + "sys_vendor": "Amazon EC2\n", cloudenv.KubernetesTokenPath: "t"},
			env:      map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": tok, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"},
			provider: cloudenv.AWS, evidence: "AWS_WEB_IDENTITY_TOKEN_FILE", machine: cloudenv.AWS, k8: true},
		// An AKS pod's workload identity on a GCE machine is still Azure:
		// the platform set it for this process.
		{name: "env beats dmi", files: map[string]string{dmi + "sys_vendor": "Google\n"},
			env:      map[string]string{"AZURE_FEDERATED_TOKEN_FILE": tok, "AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t"},
			provider: cloudenv.Azure, evidence: "AZURE_FEDERATED_TOKEN_FILE", machine: cloudenv.GCP},
		{name: "two providers' identities", env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": tok,
			"AWS_WEB_IDENTITY_TOKEN_FILE": tok, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"},
			conflict: true, evidence: "(gcp)"},
		{name: "kubernetes alone names no provider", files: map[string]string{cloudenv.KubernetesTokenPath: "t"}, k8: true},
		{name: "eks token without variables", files: map[string]string{cloudenv.EKSTokenPath: "t"},
			provider: cloudenv.AWS, evidence: cloudenv.EKSTokenPath + "=present"},
		{name: "aks token without variables", files: map[string]string{cloudenv.AzureTokenPath: "t"},
			provider: cloudenv.Azure, evidence: cloudenv.AzureTokenPath + "=present"},
		{name: "cloud run", env: map[string]string{"K_SERVICE": "api"}, provider: cloudenv.GCP, evidence: "K_SERVICE=api"},
		// Knative on EC2: the machine names the cloud.
		{name: "knative on ec2", files: map[string]string{dmi + "sys_vendor": "Amazon EC2\n"}, env: map[string]string{"K_SERVICE": "api"},
			provider: cloudenv.AWS, evidence: "sys_vendor=Amazon EC2", machine: cloudenv.AWS},
		// A directory where the token should be is not a token.
		{name: "token path is a directory", files: map[string]string{cloudenv.EKSTokenPath + "/x": "t"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := cloudenv.Detect(fakeMachine(t, c.files, c.env))
			if r.Provider != c.provider || r.Machine != c.machine || r.Conflict != c.conflict || r.Kubernetes != c.k8 {
				t.Fatalf("Detect = %+v; want provider %q machine %q conflict %v kubernetes %v", r, c.provider, c.machine, c.conflict, c.k8)
			}
			if c.evidence == "" && r.Evidence != "" || !strings.Contains(r.Evidence, c.evidence) {
				t.Fatalf("Evidence = %q, want it to contain %q", r.Evidence, c.evidence)
			}
			if strings.Contains(r.Evidence, os.TempDir()) && c.env == nil {
				t.Fatalf("Evidence %q names the fake root instead of the machine's path", r.Evidence)
			}
			t.Log(r)
		})
	}
}

// TestString: the log line names the provider and the evidence.
func TestString(t *testing.T) {
	r := cloudenv.Detect(fakeMachine(t, map[string]string{dmi + "sys_vendor": "Amazon EC2\n"}, nil))
	if got, want := r.String(), "provider aws detected from /sys/class/dmi/id/sys_vendor=Amazon EC2"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	r = cloudenv.Detect(fakeMachine(t, map[string]string{cloudenv.KubernetesTokenPath: "t"}, nil))
	if got := r.String(); !strings.HasPrefix(got, "no provider detected (looked at ") || !strings.HasSuffix(got, " in a Kubernetes pod") {
		t.Fatalf("String() = %q", got)
	}
}

// TestDefaults: the zero Config reads this machine and its environment
// without failing, whatever it is.
func TestDefaults(t *testing.T) {
	var c cloudenv.Config
	c.EnsureDefaults()
	if c.Root != "/" || c.Getenv == nil {
		t.Fatalf("EnsureDefaults: %+v", c)
	}
	t.Log(cloudenv.Detect(cloudenv.Config{}))
}
