package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Resolver is the part of *net.Resolver that discovery uses; tests pass
// one that asks a DNS server on loopback.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
	LookupHost(ctx context.Context, host string) (addrs []string, err error)
}

var _ Resolver = (*net.Resolver)(nil)

// k8sNamespaceFile holds the pod's namespace when POD_NAMESPACE is unset.
const k8sNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// discoverer turns Config.Peers and Config.Discover into gossip addresses.
type discoverer struct {
	peers    []string
	sources  []source
	resolver Resolver
	port     int // the port of port-less results: this node's own
}

// discover runs every source and returns the addresses found, deduplicated,
// with the errors of the sources that failed. A failing source does not
// keep the others' results from being used.
func (d *discoverer) discover(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(addrs []string) {
		for _, a := range addrs {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	add(d.peers)
	var errs []error
	for _, s := range d.sources {
		var addrs []string
		var err error
		switch s.kind {
		case sourceDNS:
			addrs, err = lookupDNS(ctx, d.resolver, s.name, orPort(s.port, d.port))
		case sourceEC2:
			addrs, err = lookupEC2(ctx, s.name, s.tagValue, d.port)
		case sourceK8s:
			addrs, err = lookupK8s(ctx, d.resolver, d.port)
		}
		if err != nil {
			errs = append(errs, err)
		}
		add(addrs)
	}
	return out, errors.Join(errs...)
}

func orPort(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// lookupDNS resolves name's SRV records (target:port for each), or if it
// has none, its A and AAAA records with port.
func lookupDNS(ctx context.Context, r Resolver, name string, port int) ([]string, error) {
	_, srvs, err := r.LookupSRV(ctx, "", "", name)
	if err == nil && len(srvs) > 0 {
		var out []string
		var errs []error
		for _, s := range srvs {
			hosts, err := r.LookupHost(ctx, s.Target)
			if err != nil {
				errs = append(errs, fmt.Errorf("membership: dns %s: SRV target %s: %w", name, s.Target, err))
				continue
			}
			for _, h := range hosts {
				out = append(out, net.JoinHostPort(h, strconv.Itoa(int(s.Port))))
			}
		}
		return out, errors.Join(errs...)
	}
	hosts, err := r.LookupHost(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("membership: dns %s: no SRV records, and A/AAAA lookup failed: %w", name, err)
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, net.JoinHostPort(h, strconv.Itoa(port)))
	}
	return out, nil
}

// k8sServiceName is the DNS name of the headless service whose endpoints
// are this pod's peers: <BRAINY_K8S_SERVICE or brainy>.<namespace>.svc.cluster.local.
func k8sServiceName() (string, error) {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return "", errors.New("membership: k8s discovery outside Kubernetes (KUBERNETES_SERVICE_HOST is unset)")
	}
	svc := os.Getenv("BRAINY_K8S_SERVICE")
	if svc == "" {
		svc = "brainy"
	}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		b, err := os.ReadFile(k8sNamespaceFile)
		if err != nil {
			return "", fmt.Errorf("membership: k8s discovery needs POD_NAMESPACE or %s: %w", k8sNamespaceFile, err)
		}
		ns = strings.TrimSpace(string(b))
	}
	if ns == "" {
		return "", errors.New("membership: k8s discovery: the pod's namespace is empty")
	}
	return svc + "." + ns + ".svc.cluster.local", nil
}

func lookupK8s(ctx context.Context, r Resolver, port int) ([]string, error) {
	name, err := k8sServiceName()
	if err != nil {
		return nil, err
	}
	return lookupDNS(ctx, r, name, port)
}

// envCredentials reads AWS credentials from AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN alone. The SDK's default
// chain would fall back to the instance metadata service (EC2 instance
// roles); discovery must never contact it, so the chain is replaced.
type envCredentials struct{}

func (envCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return aws.Credentials{}, errors.New("membership: ec2 discovery needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
	}
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: os.Getenv("AWS_SESSION_TOKEN"), Source: "environment"}, nil
}

// lookupEC2 lists the private IPs of running instances tagged key=value.
// The region comes from the standard AWS configuration (AWS_REGION, the
// shared config file); the endpoint can be overridden with
// AWS_ENDPOINT_URL_EC2 or AWS_ENDPOINT_URL. The instance metadata service
// is disabled for both region and credentials.
func lookupEC2(ctx context.Context, key, value string, port int) ([]string, error) {
	// Credentials are checked first so that a node without them fails
	// with one clear line instead of after the SDK's retries.
	if _, err := (envCredentials{}).Retrieve(ctx); err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		config.WithCredentialsProvider(envCredentials{}),
	)
	if err != nil {
		return nil, fmt.Errorf("membership: ec2 discovery: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("membership: ec2 discovery needs a region (AWS_REGION or the shared config file)")
	}
	client := ec2.NewFromConfig(cfg)
	in := &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + key), Values: []string{value}},
		{Name: aws.String("instance-state-name"), Values: []string{"running"}},
	}}
	var out []string
	p := ec2.NewDescribeInstancesPaginator(client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("membership: ec2 discovery tag %s=%s: %w", key, value, err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				if inst.PrivateIpAddress != nil && *inst.PrivateIpAddress != "" {
					out = append(out, net.JoinHostPort(*inst.PrivateIpAddress, strconv.Itoa(port)))
				}
			}
		}
	}
	return out, nil
}
