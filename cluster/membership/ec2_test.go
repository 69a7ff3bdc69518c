package membership

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ec2Server serves the EC2 Query API's DescribeInstances on loopback and
// records the requests it got.
type ec2Server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request // with their form parsed
}

const describeInstancesXML = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-1</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-1</instanceId>
          <privateIpAddress>127.0.0.51</privateIpAddress>
          <instanceState><code>16</code><name>running</name></instanceState>
        </item>
        <item>
          <instanceId>i-2</instanceId>
          <privateIpAddress>127.0.0.52</privateIpAddress>
          <instanceState><code>16</code><name>running</name></instanceState>
        </item>
      </instancesSet>
    </item>
    <item>
      <reservationId>r-2</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-3</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>`

func startEC2(t *testing.T) *ec2Server {
	s := &ec2Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.mu.Unlock()
		if r.Form.Get("Action") != "DescribeInstances" {
			http.Error(w, "unexpected action", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(describeInstancesXML))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *ec2Server) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// isolateAWS points every AWS setting at the test: region and endpoint set,
// the metadata service at a server that records any contact, and shared
// config files that hold other credentials, which must not be used.
func isolateAWS(t *testing.T, endpointVar, endpoint string) (imdsHits func() int) {
	var mu sync.Mutex
	hits := 0
	imdsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		http.Error(w, "no", http.StatusNotFound)
	}))
	t.Cleanup(imdsSrv.Close)
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = filesecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_REGION":                        "eu-west-1",
		"AWS_DEFAULT_REGION":                "",
		"AWS_PROFILE":                       "",
		"AWS_CONFIG_FILE":                   filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":       creds,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": imdsSrv.URL,
		"AWS_EC2_METADATA_DISABLED":         "false",
		"AWS_ENDPOINT_URL":                  "",
		"AWS_ENDPOINT_URL_EC2":              "",
		"AWS_ACCESS_KEY_ID":                 "",
		"AWS_SECRET_ACCESS_KEY":             "",
		"AWS_SESSION_TOKEN":                 "",
		"AWS_MAX_ATTEMPTS":                  "1",
	} {
		t.Setenv(k, v)
	}
	t.Setenv(endpointVar, endpoint)
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return hits
	}
}

func TestEC2Discovery(t *testing.T) {
	for _, endpointVar := range []string{"AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"} {
		t.Run(endpointVar, func(t *testing.T) {
			ec2 := startEC2(t)
			imdsHits := isolateAWS(t, endpointVar, ec2.URL)
			t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			got, err := lookupEC2(ctx, "brainy-cluster", "prod", 7946)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"127.0.0.51:7946", "127.0.0.52:7946"}; !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v (an instance without a private IP is skipped)", got, want)
			}
			reqs := ec2.requests()
			if len(reqs) != 1 {
				t.Fatalf("EC2 got %d requests, want 1", len(reqs))
			}
			filters := map[string]string{}
			for i := 1; i <= 2; i++ {
				n := reqs[0].Form.Get(fmt.Sprintf("Filter.%d.Name", i))
				filters[n] = reqs[0].Form.Get(fmt.Sprintf("Filter.%d.Value.1", i))
			}
			if filters["tag:brainy-cluster"] != "prod" || filters["instance-state-name"] != "running" {
				t.Fatalf("filters sent: %v", filters)
			}
			auth := reqs[0].Header.Get("Authorization")
			if !strings.Contains(auth, "Credential=AKIDFROMENV/") || !strings.Contains(auth, "/eu-west-1/ec2/") {
				t.Fatalf("request not signed with the environment's credentials for eu-west-1: %q", auth)
			}
			if n := imdsHits(); n != 0 {
				t.Fatalf("the instance metadata service was contacted %d times", n)
			}
		})
	}
}

// TestEC2CredentialsOnlyFromEnv: with no credentials in the environment,
// discovery fails with one clear error, though the shared credentials file
// has some and the metadata service is reachable: neither is used.
func TestEC2CredentialsOnlyFromEnv(t *testing.T) {
	ec2 := startEC2(t)
	imdsHits := isolateAWS(t, "AWS_ENDPOINT_URL_EC2", ec2.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := lookupEC2(ctx, "brainy-cluster", "prod", 7946)
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("error %v, want one naming AWS_ACCESS_KEY_ID", err)
	}
	if n := len(ec2.requests()); n != 0 {
		t.Fatalf("EC2 got %d requests without credentials", n)
	}
	if n := imdsHits(); n != 0 {
		t.Fatalf("the instance metadata service was contacted %d times", n)
	}
	// The credentials provider itself, asked directly, also refuses.
	if _, err := (envCredentials{}).Retrieve(ctx); err == nil {
		t.Fatal("envCredentials returned credentials with none in the environment")
	}
}
