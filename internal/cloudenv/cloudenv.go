// Package cloudenv tells which cloud provider a process runs on, from local
// evidence only: environment variables that a platform sets for its
// workloads, the firmware's DMI strings in /sys/class/dmi/id, and token
// files mounted into pods. It never sends a request: the instance metadata
// services (169.254.169.254) are what the credential chains it informs may
// ask, and asking one off its cloud costs a timeout or, worse, reaches
// another cloud's service at the same address.
//
// The object-store adapters use the result to decide whether their SDK's
// default credential chain may use the machine's identity (EC2 instance
// roles, GCE metadata credentials, Azure managed identities), and cloud://
// uses it to pick the store when the environment names none.
//
// Detection order, strongest first:
//
//  1. Platform environment variables set for this very process: AWS web
//     identity (IRSA: AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN) and
//     container credentials (ECS task roles, EKS Pod Identity:
//     AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI); Azure workload
//     identity (AZURE_FEDERATED_TOKEN_FILE with AZURE_CLIENT_ID and
//     AZURE_TENANT_ID) and App Service managed identity (IDENTITY_ENDPOINT);
//     Google credentials (GOOGLE_APPLICATION_CREDENTIALS, GCE_METADATA_HOST).
//     A token or credentials file counts only if it exists. Two providers
//     here is a conflict: the result names none.
//  2. The machine's DMI strings: sys_vendor, bios_vendor, product_name,
//     bios_version and chassis_asset_tag. This also sets Result.Machine,
//     the provider whose instance metadata service the machine has.
//  3. Weaker hints: a workload identity token at its well-known mount
//     path without the variables that name it, and the variables of
//     Google's serverless platforms (Cloud Run, App Engine).
//
// A Kubernetes service-account token names no provider (any cluster has
// one); it is reported in Result.Kubernetes for the logs, since in a pod the
// node's metadata service may be firewalled off.
package cloudenv

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Provider names a cloud provider.
type Provider string

// The providers Detect knows.
const (
	// None is no provider: nothing pointed at one, or evidence conflicted.
	None Provider = ""
	// AWS is Amazon Web Services.
	AWS Provider = "aws"
	// GCP is Google Cloud.
	GCP Provider = "gcp"
	// Azure is Microsoft Azure.
	Azure Provider = "azure"
)

// Well-known paths, relative to Config.Root.
const (
	// DMIDir holds the firmware's identification strings on Linux.
	DMIDir = "/sys/class/dmi/id"
	// KubernetesTokenPath is where Kubernetes mounts a pod's
	// service-account token.
	KubernetesTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	// EKSTokenPath is where the EKS pod identity webhook mounts the web
	// identity token for IRSA.
	EKSTokenPath = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
	// AzureTokenPath is where the Azure workload identity webhook mounts
	// the federated token.
	AzureTokenPath = "/var/run/secrets/azure/tokens/azure-identity-token"
)

// azureAssetTag is the chassis asset tag of every Azure virtual machine;
// sys_vendor "Microsoft Corporation" alone is any Hyper-V guest.
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// Config says where Detect looks. The zero value looks at this machine.
type Config struct {
	// Root is the directory the well-known paths (DMIDir and the token
	// paths) are read under. Default "/". Tests point it at a fake tree.
	// Paths named by environment variables are read as they are.
	Root string

	// Getenv returns an environment variable's value. Default os.Getenv.
	Getenv func(string) string
}

// EnsureDefaults sets every zero field to its default.
func (c *Config) EnsureDefaults() {
	if c.Root == "" {
		c.Root = "/"
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
}

// A Finding is one piece of evidence.
type Finding struct {
	// Provider is the provider the evidence points at.
	Provider Provider
	// Source is the variable or the path (as on a real machine, without
	// Config.Root) that was read.
	Source string
	// Value is what it held, trimmed; for token files, "present".
	Value string
}

// String renders the finding as source=value.
func (f Finding) String() string { return f.Source + "=" + f.Value }

// Result is what Detect found.
type Result struct {
	// Provider is the provider to take credentials from, None if nothing
	// pointed at one or the environment named two.
	Provider Provider
	// Evidence is the finding that decided Provider, or the conflicting
	// findings when Conflict is set; "" when nothing was found.
	Evidence string
	// Conflict is set when the platform variables of two providers are
	// set at once.
	Conflict bool
	// Machine is the provider whose virtual machine this is, from the DMI
	// strings alone: only then does the link-local instance metadata
	// service belong to that provider. None off the three clouds.
	Machine Provider
	// MachineEvidence is the DMI finding that decided Machine.
	MachineEvidence string
	// Kubernetes is set when a service-account token is mounted: this is
	// a pod, whose access to the node's metadata service the cluster may
	// block.
	Kubernetes bool
	// Findings is every piece of evidence, strongest first.
	Findings []Finding
}

// String describes the result for a log line, e.g. "provider aws detected
// from /sys/class/dmi/id/sys_vendor=Amazon EC2".
func (r Result) String() string {
	var s string
	switch {
	case r.Conflict:
		s = "no provider detected: conflicting evidence " + r.Evidence
	case r.Provider == None:
		s = "no provider detected (looked at " + Looked + ")"
	default:
		s = "provider " + string(r.Provider) + " detected from " + r.Evidence
	}
	if r.Kubernetes {
		s += " in a Kubernetes pod"
	}
	return s
}

// Looked lists what Detect reads, for messages that say where it looked.
const Looked = "AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*, AZURE_FEDERATED_TOKEN_FILE, IDENTITY_ENDPOINT, " +
	"GOOGLE_APPLICATION_CREDENTIALS, GCE_METADATA_HOST, " + DMIDir + ", workload identity token files, K_SERVICE, GAE_APPLICATION"

// Detect looks for the provider this process runs on. It reads a few
// small local files and environment variables and sends nothing.
func Detect(cfg Config) Result {
	cfg.EnsureDefaults()
	d := detector{cfg: cfg}
	var r Result

	// 1. Platform variables for this process.
	strong := d.platformEnv()
	r.Findings = append(r.Findings, strong...)
	providers := map[Provider]bool{}
	for _, f := range strong {
		providers[f.Provider] = true
	}
	switch {
	case len(providers) > 1:
		r.Conflict = true
		parts := make([]string, 0, len(strong))
		for _, f := range strong {
			parts = append(parts, f.String()+" ("+string(f.Provider)+")")
		}
		r.Evidence = strings.Join(parts, ", ")
	case len(strong) > 0:
		r.Provider, r.Evidence = strong[0].Provider, strong[0].String()
	}

	// 2. The machine.
	if f, ok := d.dmi(); ok {
		r.Findings = append(r.Findings, f)
		r.Machine, r.MachineEvidence = f.Provider, f.String()
		if r.Provider == None && !r.Conflict {
			r.Provider, r.Evidence = f.Provider, f.String()
		}
	}

	// 3. Hints.
	hints := d.hints()
	r.Findings = append(r.Findings, hints...)
	if r.Provider == None && !r.Conflict && len(hints) > 0 {
		r.Provider, r.Evidence = hints[0].Provider, hints[0].String()
	}

	r.Kubernetes = d.exists(d.root(KubernetesTokenPath))
	return r
}

type detector struct{ cfg Config }

func (d detector) env(k string) string { return strings.TrimSpace(d.cfg.Getenv(k)) }

// root returns the path of a well-known path under Config.Root.
func (d detector) root(p string) string {
	return filepath.Join(d.cfg.Root, filepath.FromSlash(p))
}

// exists reports whether p is a regular file (a token, not a directory or
// a dangling name).
func (d detector) exists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func (d detector) platformEnv() []Finding {
	var out []Finding
	if p := d.env("AWS_WEB_IDENTITY_TOKEN_FILE"); p != "" && d.env("AWS_ROLE_ARN") != "" && d.exists(p) {
		out = append(out, Finding{AWS, "AWS_WEB_IDENTITY_TOKEN_FILE", p})
	}
	for _, k := range []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		if v := d.env(k); v != "" {
			out = append(out, Finding{AWS, k, v})
			break
		}
	}
	if p := d.env("AZURE_FEDERATED_TOKEN_FILE"); p != "" && d.env("AZURE_CLIENT_ID") != "" && d.env("AZURE_TENANT_ID") != "" && d.exists(p) {
		out = append(out, Finding{Azure, "AZURE_FEDERATED_TOKEN_FILE", p})
	}
	if v := d.env("IDENTITY_ENDPOINT"); v != "" {
		out = append(out, Finding{Azure, "IDENTITY_ENDPOINT", v})
	}
	if p := d.env("GOOGLE_APPLICATION_CREDENTIALS"); p != "" && d.exists(p) {
		out = append(out, Finding{GCP, "GOOGLE_APPLICATION_CREDENTIALS", p})
	}
	if v := d.env("GCE_METADATA_HOST"); v != "" {
		out = append(out, Finding{GCP, "GCE_METADATA_HOST", v})
	}
	return out
}

// dmi reads the firmware strings. AWS Nitro instances say "Amazon EC2" in
// sys_vendor and bios_vendor; older Xen instances say "Xen" there and carry
// "amazon" in bios_version. Google says "Google" and "Google Compute
// Engine". Azure is a Hyper-V guest ("Microsoft Corporation") with Azure's
// chassis asset tag.
func (d detector) dmi() (Finding, bool) {
	read := func(name string) (Finding, string) {
		src := path.Join(DMIDir, name)
		v := readSmall(d.root(src))
		return Finding{Source: src, Value: v}, strings.ToLower(v)
	}
	vendor, vendorL := read("sys_vendor")
	bios, biosL := read("bios_vendor")
	product, productL := read("product_name")
	biosVersion, biosVersionL := read("bios_version")
	tag, _ := read("chassis_asset_tag")
	switch {
	case strings.HasPrefix(vendorL, "amazon"):
		vendor.Provider = AWS
		return vendor, true
	case strings.HasPrefix(biosL, "amazon"):
		bios.Provider = AWS
		return bios, true
	case strings.Contains(biosVersionL, "amazon"):
		biosVersion.Provider = AWS
		return biosVersion, true
	case vendorL == "google":
		vendor.Provider = GCP
		return vendor, true
	case productL == "google compute engine" || productL == "google":
		product.Provider = GCP
		return product, true
	case biosL == "google":
		bios.Provider = GCP
		return bios, true
	case tag.Value == azureAssetTag:
		tag.Provider = Azure
		return tag, true
	}
	return Finding{}, false
}

func (d detector) hints() []Finding {
	var out []Finding
	if d.exists(d.root(EKSTokenPath)) {
		out = append(out, Finding{AWS, EKSTokenPath, "present"})
	}
	if d.exists(d.root(AzureTokenPath)) {
		out = append(out, Finding{Azure, AzureTokenPath, "present"})
	}
	// Cloud Run services and functions (K_SERVICE; Knative elsewhere sets
	// it too, but there the DMI strings, read first, name the cloud),
	// Cloud Run jobs, App Engine: Google's sandboxes may hide the DMI.
	for _, k := range []string{"CLOUD_RUN_JOB", "GAE_APPLICATION", "K_SERVICE"} {
		if v := d.env(k); v != "" {
			out = append(out, Finding{GCP, k, v})
			break
		}
	}
	return out
}

// readSmall returns the trimmed start of a small file, "" if it cannot be
// read (absent, or root-only like product_serial).
func readSmall(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.Trim(string(b), "\x00"))
}
