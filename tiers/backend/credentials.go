package backend

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/soullabs/brainy/internal/cloudenv"
	"github.com/soullabs/brainy/tiers/objstore"
)

// detectConfig is where provider detection looks: this machine. Tests of
// this package point it at fake DMI trees and environments.
var detectConfig cloudenv.Config

// detect runs provider detection (local files and variables only).
func detect() cloudenv.Result { return cloudenv.Detect(detectConfig) }

// getenv reads the environment as detection sees it.
func getenv(k string) string {
	if detectConfig.Getenv != nil {
		return detectConfig.Getenv(k)
	}
	return os.Getenv(k)
}

// envCredentials are the variables by which the environment names a
// store's credentials outright; cloud:// looks at them before detection.
var envCredentials = []struct{ scheme, name string }{
	{"s3", "AWS_ACCESS_KEY_ID"},
	{"s3", "AWS_PROFILE"},
	{"s3", "AWS_WEB_IDENTITY_TOKEN_FILE"},
	{"azure", "AZURE_STORAGE_CONNECTION_STRING"},
	{"azure", "AZURE_STORAGE_KEY"},
	{"gs", "GOOGLE_APPLICATION_CREDENTIALS"},
	{"gs", "STORAGE_EMULATOR_HOST"},
}

// schemeOf is the storage scheme of each provider's object store.
var schemeOf = map[cloudenv.Provider]string{cloudenv.AWS: "s3", cloudenv.GCP: "gs", cloudenv.Azure: "azure"}

// resolveCloud picks the store of a cloud:// setting: the one whose
// credentials the environment names, else the provider detection finds.
// It returns the scheme and why, for the logs.
func resolveCloud() (scheme, why string, err error) {
	var found, names []string
	for _, e := range envCredentials {
		if getenv(e.name) == "" {
			continue
		}
		names = append(names, e.name)
		if len(found) == 0 || found[len(found)-1] != e.scheme {
			found = append(found, e.scheme)
		}
	}
	switch len(found) {
	case 1:
		return found[0], names[0] + " is set", nil
	case 0:
	default:
		return "", "", fmt.Errorf("cloud:// is ambiguous: the environment holds credentials for %s (%s); name the store instead",
			strings.Join(found, " and "), strings.Join(names, ", "))
	}
	det := detect()
	switch {
	case det.Conflict:
		return "", "", fmt.Errorf("cloud:// is ambiguous: %s; name the store instead", det.Evidence)
	case det.Provider == cloudenv.None:
		var looked []string
		for _, e := range envCredentials {
			looked = append(looked, e.name)
		}
		return "", "", fmt.Errorf("cloud:// found no credentials in the environment (looked for %s) and detected no cloud (looked at %s); name the store: s3://, gs:// or azure://",
			strings.Join(looked, ", "), cloudenv.Looked)
	}
	return schemeOf[det.Provider], det.String(), nil
}

// awsEndpoint reports whether an S3 endpoint (empty: the SDK's own) is
// Amazon's. An EC2 instance role's credentials are for AWS only: handing
// them to R2, MinIO or versitygw would fail there anyway.
func awsEndpoint(endpoint string) bool {
	if endpoint == "" {
		return true
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return strings.HasSuffix(h, ".amazonaws.com") || strings.HasSuffix(h, ".amazonaws.com.cn")
}

// machineIdentity decides whether the store of loc may use the identity of
// the machine it runs on, the one credential source behind a link-local
// metadata address: an EC2 instance role (IMDS), a GCE service account (the
// metadata server), an Azure managed identity. An explicit URL parameter
// (already parsed into fromURL by the adapter's ConfigFromURL) decides;
// otherwise detected does. It logs the detection and the decision.
func machineIdentity(loc objstore.Location, param string, fromURL, detected bool, det cloudenv.Result, log *slog.Logger) bool {
	use, by := detected, "detection"
	if _, ok := loc.Params[param]; ok {
		use, by = fromURL, "url"
	}
	log.Info("credentials: "+det.String(), "component", "storage", "scheme", loc.Scheme, param, use, "decided_by", by)
	return use
}
