// Package kubernetes_test checks the manifests in this directory: every
// document decodes strictly into its Kubernetes API type, and the pieces
// agree with each other and with the binaries.
package kubernetes_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/federation"
	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/server"
)

// kustomization is the part of kustomize's Kustomization these files use;
// decoded strictly, a field kustomize does not have fails.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Patches    []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewTag  string `json:"newTag,omitempty"`
		NewName string `json:"newName,omitempty"`
	} `json:"images,omitempty"`
}

// serviceMonitor is the Prometheus operator's ServiceMonitor, as used here.
type serviceMonitor struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   map[string]any     `json:"metadata"`
	Spec       serviceMonitorSpec `json:"spec"`
}

type serviceMonitorSpec struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Endpoints []struct {
		Port              string                   `json:"port"`
		Path              string                   `json:"path"`
		Interval          string                   `json:"interval"`
		BearerTokenSecret corev1.SecretKeySelector `json:"bearerTokenSecret"`
	} `json:"endpoints"`
}

// manifests holds every decoded document.
type manifests struct {
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	monitors     []*serviceMonitor
	accounts     []*corev1.ServiceAccount
	roles        []*rbacv1.ClusterRole
	bindings     []*rbacv1.ClusterRoleBinding
}

// load decodes every YAML document of dir strictly, by its kind.
func load(t *testing.T, dir string) (*manifests, *kustomization) {
	t.Helper()
	m := &manifests{}
	var k *kustomization
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var head struct{ Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			strict := func(into any) {
				if err := yaml.UnmarshalStrict(doc, into); err != nil {
					t.Fatalf("%s #%d (%s): %v", f, i, head.Kind, err)
				}
			}
			switch head.Kind {
			case "Kustomization":
				k = &kustomization{}
				strict(k)
			case "StatefulSet":
				s := &appsv1.StatefulSet{}
				strict(s)
				m.statefulSets = append(m.statefulSets, s)
			case "Deployment":
				d := &appsv1.Deployment{}
				strict(d)
				m.deployments = append(m.deployments, d)
			case "Service":
				s := &corev1.Service{}
				strict(s)
				m.services = append(m.services, s)
			case "PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				strict(p)
				m.pdbs = append(m.pdbs, p)
			case "HorizontalPodAutoscaler":
				h := &autoscalingv2.HorizontalPodAutoscaler{}
				strict(h)
				m.hpas = append(m.hpas, h)
			case "ServiceMonitor":
				s := &serviceMonitor{}
				strict(s)
				m.monitors = append(m.monitors, s)
			case "ServiceAccount":
				a := &corev1.ServiceAccount{}
				strict(a)
				m.accounts = append(m.accounts, a)
			case "ClusterRole":
				r := &rbacv1.ClusterRole{}
				strict(r)
				m.roles = append(m.roles, r)
			case "ClusterRoleBinding":
				b := &rbacv1.ClusterRoleBinding{}
				strict(b)
				m.bindings = append(m.bindings, b)
			default:
				t.Fatalf("%s #%d: kind %q is not checked by this test", f, i, head.Kind)
			}
		}
	}
	if k == nil {
		t.Fatalf("%s has no kustomization.yaml", dir)
	}
	return m, k
}

var help = map[string]string{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "brainy-k8s-test")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"brainy-core", "brainy-edge"} {
		bin, err := coretest.Build("../..", dir, name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		help[name] = string(out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkEnv: every BRAINY_* variable of container c is a flag of binary
// (its env: line in --help); any other variable exists for a later one to
// expand as $(NAME), Kubernetes expanding only variables defined before.
func checkEnv(t *testing.T, where, binary string, c corev1.Container) {
	t.Helper()
	for i, e := range c.Env {
		if strings.HasPrefix(e.Name, "BRAINY_") {
			if !strings.Contains(help[binary], "env: "+e.Name+"\n") {
				t.Errorf("%s: %s is not in %s --help", where, e.Name, binary)
			}
			continue
		}
		used := false
		for _, later := range c.Env[i+1:] {
			used = used || strings.Contains(later.Value, "$("+e.Name+")")
		}
		if !used {
			t.Errorf("%s: %s is no flag of %s, and no later variable uses it", where, e.Name, binary)
		}
	}
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// workload is one kind of pod of the base: what runs it and how it is
// reached.
type workload struct {
	name   string // the binary its container runs
	labels map[string]string
	spec   corev1.PodSpec
	ports  map[string]port
}

type port struct {
	n     int32
	proto corev1.Protocol
}

func portsOf(c corev1.Container) map[string]port {
	out := map[string]port{}
	for _, p := range c.Ports {
		out[p.Name] = port{p.ContainerPort, p.Protocol}
	}
	return out
}

func envOf(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestBase: the base decodes strictly and holds together.
func TestBase(t *testing.T) {
	m, k := load(t, "base")

	// The kustomization lists every file here, and only those.
	files, _ := filepath.Glob("base/*.yaml")
	var want []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			want = append(want, filepath.Base(f))
		}
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, files %v", got, want)
	}
	if len(m.statefulSets) != 2 || len(m.deployments) != 1 {
		t.Fatalf("%d StatefulSets, %d Deployments: want the voters', the readers' and the edges'", len(m.statefulSets), len(m.deployments))
	}
	// The voters and the readers run the same binary; the readers say so.
	core, reader := m.statefulSets[0], m.statefulSets[1]
	if envOf(core.Spec.Template.Spec.Containers[0], "BRAINY_ROLE") == "reader" {
		core, reader = reader, core
	}
	if role := envOf(reader.Spec.Template.Spec.Containers[0], "BRAINY_ROLE"); role != "reader" {
		t.Fatalf("StatefulSet %s: BRAINY_ROLE=%q, want reader", reader.Name, role)
	}
	if role := envOf(core.Spec.Template.Spec.Containers[0], "BRAINY_ROLE"); role != "" && role != "voter" {
		t.Fatalf("StatefulSet %s: BRAINY_ROLE=%q, want the default voter", core.Name, role)
	}
	edgeD := m.deployments[0]
	cc, rc, ec := core.Spec.Template.Spec.Containers[0], reader.Spec.Template.Spec.Containers[0], edgeD.Spec.Template.Spec.Containers[0]
	voters := workload{"brainy-core", core.Spec.Template.Labels, core.Spec.Template.Spec, portsOf(cc)}
	readers := workload{"brainy-core", reader.Spec.Template.Labels, reader.Spec.Template.Spec, portsOf(rc)}
	edges := workload{"brainy-edge", edgeD.Spec.Template.Labels, edgeD.Spec.Template.Spec, portsOf(ec)}
	all := []workload{voters, readers, edges}

	// Each workload's selector matches its own pods and no other's: a
	// reader counted as a voter would be scaled, budgeted and placed as one.
	selectors := []map[string]string{core.Spec.Selector.MatchLabels, reader.Spec.Selector.MatchLabels, edgeD.Spec.Selector.MatchLabels}
	for i, sel := range selectors {
		for j, w := range all {
			if matches(sel, w.labels) != (i == j) {
				t.Errorf("selector %v matches %v: %v", sel, w.labels, i != j)
			}
		}
	}

	// Ports: the binaries' listeners. A reader needs no federation port:
	// it does not join the federation.
	corePorts := map[string]port{"http": {server.DefaultHTTPPort, corev1.ProtocolTCP}, "quic": {server.DefaultQUICPort, corev1.ProtocolUDP},
		"gossip": {membership.DefaultBindPort, corev1.ProtocolTCP}, "gossip-udp": {membership.DefaultBindPort, corev1.ProtocolUDP},
		"federation": {federation.DefaultPort, corev1.ProtocolTCP}, "federation-udp": {federation.DefaultPort, corev1.ProtocolUDP}}
	for name, want := range corePorts {
		if voters.ports[name] != want {
			t.Errorf("core port %s: %+v, want %+v", name, voters.ports[name], want)
		}
		if got, ok := readers.ports[name]; (ok || !strings.HasPrefix(name, "federation")) && got != want {
			t.Errorf("reader port %s: %+v, want %+v", name, got, want)
		}
	}
	if want := edge.DefaultHTTPPort; fmt.Sprint(edges.ports["http"].n) != want || edges.ports["http"].proto != corev1.ProtocolTCP {
		t.Errorf("edge port http: %+v, want %s/TCP", edges.ports["http"], want)
	}

	// Probes: paths the API serves, ports the container names.
	for _, c := range []corev1.Container{cc, rc, ec} {
		ports := portsOf(c)
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s: a probe is missing", c.Name)
				continue
			}
			if p.HTTPGet.Path != "/readyz" && p.HTTPGet.Path != "/healthz" {
				t.Errorf("%s: probe path %s", c.Name, p.HTTPGet.Path)
			}
			if _, ok := ports[p.HTTPGet.Port.StrVal]; !ok {
				t.Errorf("%s: probe port %q is not a container port", c.Name, p.HTTPGet.Port.String())
			}
		}
	}

	// Every variable is a flag of the binary the container runs.
	if !slices.Equal(ec.Command, []string{"/usr/local/bin/brainy-edge"}) {
		t.Errorf("the edge container runs %v", ec.Command)
	}
	for _, w := range all {
		checkEnv(t, w.spec.Containers[0].Name, w.name, w.spec.Containers[0])
	}

	// The zone: the node's label, read as the pod's own ServiceAccount,
	// which the binding lets get nodes and nothing else.
	checkZoneFromNode(t, m, core, edgeD)
	checkZoneFromNode(t, m, reader, edgeD)

	// Services select the pods of exactly one workload and name ports they
	// have.
	var headless, readersHeadless, readService *corev1.Service
	for _, s := range m.services {
		var of []workload
		for _, w := range all {
			if matches(s.Spec.Selector, w.labels) {
				of = append(of, w)
			}
		}
		if len(of) != 1 {
			t.Errorf("Service %s selects the pods of %d workloads, want one", s.Name, len(of))
			continue
		}
		for _, p := range s.Spec.Ports {
			target := p.Name
			if p.TargetPort.StrVal != "" {
				target = p.TargetPort.StrVal
			}
			if got, ok := of[0].ports[target]; !ok || got.proto != p.Protocol || p.TargetPort.StrVal == "" && got.n != p.Port {
				t.Errorf("Service %s port %s does not match a container port", s.Name, p.Name)
			}
		}
		headlessOf := s.Spec.ClusterIP == corev1.ClusterIPNone
		switch {
		case headlessOf && s.Name == core.Spec.ServiceName:
			headless = s
		case headlessOf && s.Name == reader.Spec.ServiceName:
			readersHeadless = s
		case !headlessOf && matches(s.Spec.Selector, readers.labels):
			readService = s
		}
	}
	// The headless Service is the StatefulSet's, and its SRV records are
	// what --discover dns: asks for: _PORT._PROTO.SERVICE. Readers find
	// the cluster through the voters' records.
	if headless == nil || !matches(headless.Spec.Selector, voters.labels) || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("no headless Service (publishing not-ready pods) of the cores named by their StatefulSet: %v", headless)
	}
	if readersHeadless == nil || !matches(readersHeadless.Spec.Selector, readers.labels) {
		t.Errorf("no headless Service of the readers named by their StatefulSet (%q)", reader.Spec.ServiceName)
	}
	discover := envOf(cc, "BRAINY_DISCOVER")
	found := false
	for _, p := range headless.Spec.Ports {
		if discover == fmt.Sprintf("dns:_%s._%s.%s", p.Name, strings.ToLower(string(p.Protocol)), headless.Name) && p.Port == membership.DefaultBindPort {
			found = true
		}
	}
	if !found {
		t.Errorf("BRAINY_DISCOVER=%q names no SRV record of the headless Service's gossip port", discover)
	}
	if d := envOf(rc, "BRAINY_DISCOVER"); d != discover {
		t.Errorf("the readers discover %q, the cores %q: readers must find the voters", d, discover)
	}
	if readService == nil || readService.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Error("no client Service for stale reads from the readers' HTTP port")
	}

	// Disruption budget: the voters, one down at a time; the readers are
	// outside it (losing them costs no quorum).
	if len(m.pdbs) != 1 || !matches(m.pdbs[0].Spec.Selector.MatchLabels, voters.labels) || matches(m.pdbs[0].Spec.Selector.MatchLabels, readers.labels) ||
		m.pdbs[0].Spec.MaxUnavailable.IntValue() != 1 {
		t.Error("the PodDisruptionBudget does not hold the cores (only) to one down at a time")
	}
	// Autoscalers: the edges and the readers, never the voters, whose
	// count is the replication factor's business.
	scaled := map[string]string{}
	for _, h := range m.hpas {
		scaled[h.Spec.ScaleTargetRef.Kind+"/"+h.Spec.ScaleTargetRef.Name] = h.Name
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("autoscaler %s: replicas %v..%d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	}
	if len(scaled) != 2 || scaled["Deployment/"+edgeD.Name] == "" || scaled["StatefulSet/"+reader.Name] == "" {
		t.Errorf("autoscalers scale %v, want the edge Deployment and the reader StatefulSet", scaled)
	}
	// The monitor scrapes every core and reader once: exactly one Service
	// it selects covers each, with the http port.
	for _, sm := range m.monitors {
		if sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].BearerTokenSecret.Name == "" {
			t.Errorf("ServiceMonitor %v: want /metrics on port http with an admin key", sm.Metadata["name"])
		}
	}
	for _, w := range []workload{voters, readers} {
		n := 0
		for _, sm := range m.monitors {
			for _, s := range m.services {
				if matches(sm.Spec.Selector.MatchLabels, s.Labels) && matches(s.Spec.Selector, w.labels) &&
					slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "http" }) {
					n++
				}
			}
		}
		if n != 1 {
			t.Errorf("pods %v are scraped through %d Services, want 1", w.labels, n)
		}
	}

	// Stopping: longer than the hand-over and drain; never root.
	for _, s := range []*appsv1.StatefulSet{core, reader} {
		if g := s.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < int64(2*server.DefaultShutdownTimeout.Seconds()) {
			t.Errorf("%s: the termination grace leaves no room for the SIGTERM hand-over", s.Name)
		}
	}
	for _, w := range all {
		if sc := w.spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("pods %v may run as root", w.labels)
		}
	}
}

// TestOverlays: each overlay decodes strictly, builds on the base and
// patches only variables the core knows.
func TestOverlays(t *testing.T) {
	dirs, _ := filepath.Glob("overlays/*")
	if len(dirs) == 0 {
		t.Fatal("no overlays")
	}
	for _, dir := range dirs {
		m, k := load(t, dir)
		if !slices.Contains(k.Resources, "../../base") {
			t.Errorf("%s does not build on the base", dir)
		}
		for _, p := range k.Patches {
			if _, err := os.Stat(filepath.Join(dir, p.Path)); err != nil {
				t.Errorf("%s: patch %s: %v", dir, p.Path, err)
			}
		}
		// A region is set on voters and readers alike: nodes of
		// different regions never form one cluster.
		regions := map[string]string{}
		for _, s := range m.statefulSets {
			for _, c := range s.Spec.Template.Spec.Containers {
				checkEnv(t, dir, "brainy-core", c)
				regions[s.Name] = envOf(c, "BRAINY_REGION")
			}
		}
		for name, r := range regions {
			for other, r2 := range regions {
				if r != r2 {
					t.Errorf("%s: StatefulSet %s is in region %q, %s in %q", dir, name, r, other, r2)
				}
			}
		}
		if len(regions) > 0 && len(regions) != 2 {
			t.Errorf("%s patches StatefulSets %v: a region is set on the voters and the readers", dir, regions)
		}
	}
}

// checkZoneFromNode: BRAINY_ZONE is node:$(VAR), VAR defined before it
// from spec.nodeName; the StatefulSet runs as a ServiceAccount that a
// ClusterRoleBinding gives a ClusterRole granting get on nodes, exactly.
func checkZoneFromNode(t *testing.T, m *manifests, core *appsv1.StatefulSet, edgeD *appsv1.Deployment) {
	t.Helper()
	env := core.Spec.Template.Spec.Containers[0].Env
	zone := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "BRAINY_ZONE" })
	if zone < 0 {
		t.Fatal("the cores have no BRAINY_ZONE")
	}
	ref, ok := strings.CutPrefix(env[zone].Value, server.ZoneFromNode)
	name, ok2 := strings.CutPrefix(ref, "$(")
	name, ok3 := strings.CutSuffix(name, ")")
	if !ok || !ok2 || !ok3 || env[zone].ValueFrom != nil {
		t.Fatalf("BRAINY_ZONE=%q: want %s$(VAR), VAR the node's name", env[zone].Value, server.ZoneFromNode)
	}
	node := slices.IndexFunc(env[:zone], func(e corev1.EnvVar) bool { return e.Name == name })
	if node < 0 || env[node].ValueFrom == nil || env[node].ValueFrom.FieldRef == nil || env[node].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("BRAINY_ZONE uses $(%s): want %s defined before it, from fieldRef spec.nodeName", name, name)
	}

	if len(m.accounts) != 1 || len(m.roles) != 1 || len(m.bindings) != 1 {
		t.Fatalf("%d ServiceAccounts, %d ClusterRoles, %d ClusterRoleBindings: want the cores' one each", len(m.accounts), len(m.roles), len(m.bindings))
	}
	sa, role, binding := m.accounts[0], m.roles[0], m.bindings[0]
	if spec := core.Spec.Template.Spec; spec.ServiceAccountName != sa.Name || spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken ||
		sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken {
		t.Errorf("the cores run as ServiceAccount %q with its token, want %q", spec.ServiceAccountName, sa.Name)
	}
	if edgeD.Spec.Template.Spec.ServiceAccountName == sa.Name {
		t.Error("the edges run as the cores' ServiceAccount: they need no API access")
	}
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}}
	if role.AggregationRule != nil || !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("ClusterRole %s grants %+v, want get on nodes only", role.Name, role.Rules)
	}
	if r := binding.RoleRef; r.APIGroup != rbacv1.GroupName || r.Kind != "ClusterRole" || r.Name != role.Name {
		t.Errorf("ClusterRoleBinding %s binds %+v, want ClusterRole %s", binding.Name, r, role.Name)
	}
	// Namespace: the ServiceAccount's, which in the base is unset, so
	// "default"; a kustomize namespace: sets both.
	ns := sa.Namespace
	if ns == "" {
		ns = "default"
	}
	wantSubject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns}}
	if !reflect.DeepEqual(binding.Subjects, wantSubject) {
		t.Errorf("ClusterRoleBinding %s binds %+v, want only %+v", binding.Name, binding.Subjects, wantSubject[0])
	}
}
