package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifests is every object of k8s/*.yaml, decoded strictly.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	secrets     []*corev1.Secret
	namespaces  []*corev1.Namespace
	clusters    []*cnpgCluster
}

// cnpgCluster is the part of a CloudNativePG Cluster (postgresql.cnpg.io/v1,
// operator 1.25) that the manifests set: the operator's Go module is not a
// dependency of the shop, and decoding strictly into these fields refuses
// one the manifest sets that is not here. Grow it with the manifest, field
// names as the operator's API reference spells them.
type cnpgCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Instances int `json:"instances"`
		Storage   struct {
			Size string `json:"size"`
		} `json:"storage"`
		Bootstrap struct {
			InitDB struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
				Secret   struct {
					Name string `json:"name"`
				} `json:"secret"`
			} `json:"initdb"`
		} `json:"bootstrap"`
	} `json:"spec"`
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// load decodes every document of every manifest into the type its kind
// names, refusing fields the type does not have (a misspelt or misplaced
// field would otherwise be dropped by the API server without a word).
func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s document %d", file, i+1)
			js, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(js, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				m.deployments, obj = append(m.deployments, d), d
			case "v1 Service":
				s := &corev1.Service{}
				m.services, obj = append(m.services, s), s
			case "v1 Secret":
				s := &corev1.Secret{}
				m.secrets, obj = append(m.secrets, s), s
			case "v1 Namespace":
				n := &corev1.Namespace{}
				m.namespaces, obj = append(m.namespaces, n), n
			case "postgresql.cnpg.io/v1 Cluster":
				c := &cnpgCluster{}
				m.clusters, obj = append(m.clusters, c), c
			default:
				t.Fatalf("%s: unexpected %s %s", where, tm.APIVersion, tm.Kind)
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(obj); err != nil {
				t.Fatalf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// roleServes is what each role of the shop listens on, from its args: the
// ports (by number) and, on each, the probe paths it answers.
func roleServes(t *testing.T, c corev1.Container) (role string, ports map[int32][]string) {
	t.Helper()
	args := c.Args
	flag := func(name string) string {
		i := slices.Index(args, "-"+name)
		if i < 0 || i+1 >= len(args) {
			return ""
		}
		return args[i+1]
	}
	port := func(addr string) int32 {
		i := strings.LastIndexByte(addr, ':')
		if i < 0 {
			t.Fatalf("%s: address %q without a port", c.Name, addr)
		}
		n, err := strconv.Atoi(addr[i+1:])
		if err != nil {
			t.Fatalf("%s: address %q: %v", c.Name, addr, err)
		}
		return int32(n)
	}
	role = flag("role")
	ports = map[int32][]string{}
	probes := []string{"/healthz", "/readyz"}
	switch role {
	case "app", "web":
		ports[port(flag("listen"))] = probes
	case "balancer":
		// The front door answers the probes on its own port, and the
		// admin listener does too.
		ports[port(flag("listen"))] = probes
		if s := flag("stats"); s != "" {
			ports[port(s)] = probes
		}
	default:
		t.Fatalf("container %s: -role %q", c.Name, role)
	}
	return role, ports
}

// containerPort resolves a probe's or Service's port (a name or a number)
// among the container's ports.
func containerPort(c corev1.Container, p intstr.IntOrString, proto corev1.Protocol) (int32, bool) {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, cp := range c.Ports {
		cpProto := cp.Protocol
		if cpProto == "" {
			cpProto = corev1.ProtocolTCP
		}
		if cpProto != proto {
			continue
		}
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func TestManifests(t *testing.T) {
	m := load(t)
	if len(m.deployments) != 3 {
		t.Fatalf("%d Deployments, want app, web and balancer", len(m.deployments))
	}
	roles := map[string]*appsv1.Deployment{}
	for _, d := range m.deployments {
		where := "Deployment " + d.Name
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			t.Fatalf("%s: selector: %v", where, err)
		}
		if !sel.Matches(labelSet(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %v does not match its pods' labels %v", where, d.Spec.Selector, d.Spec.Template.Labels)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
			t.Errorf("%s: fewer than two replicas: one is a single point of failure", where)
		}
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", where, len(d.Spec.Template.Spec.Containers))
		}
		c := d.Spec.Template.Spec.Containers[0]
		role, serves := roleServes(t, c)
		roles[role] = d
		for _, pr := range []struct {
			what  string
			probe *corev1.Probe
			path  string
		}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s probe", where, pr.what)
				continue
			}
			if pr.probe.HTTPGet.Path != pr.path {
				t.Errorf("%s: %s probe on %s, want %s", where, pr.what, pr.probe.HTTPGet.Path, pr.path)
			}
			n, ok := containerPort(c, pr.probe.HTTPGet.Port, corev1.ProtocolTCP)
			if !ok {
				t.Errorf("%s: %s probe port %s is none of the container's", where, pr.what, pr.probe.HTTPGet.Port.String())
				continue
			}
			if !slices.Contains(serves[n], pr.path) {
				t.Errorf("%s: %s probe on port %d, where -role %s serves no %s (it serves %v)", where, pr.what, n, role, pr.path, serves)
			}
		}
		for _, cp := range c.Ports {
			if cp.Protocol != corev1.ProtocolUDP && cp.Name != "gossip-tcp" {
				if _, ok := serves[cp.ContainerPort]; !ok {
					t.Errorf("%s: port %s (%d) is not one -role %s listens on (%v)", where, cp.Name, cp.ContainerPort, role, serves)
				}
			}
		}
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || (c.Lifecycle.PreStop.Sleep == nil && c.Lifecycle.PreStop.Exec == nil) {
			t.Errorf("%s: no preStop delay: the listener would close before the endpoint leaves the callers' pools", where)
		} else if s := c.Lifecycle.PreStop.Sleep; s != nil {
			grace := int64(30)
			if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
				grace = *g
			}
			if s.Seconds < 1 || s.Seconds+10 >= grace {
				t.Errorf("%s: preStop sleep %ds and a 10s stop do not fit in %ds of grace", where, s.Seconds, grace)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				if !hasSecretKey(m.secrets, d.Namespace, ref.Name, ref.Key) {
					t.Errorf("%s: %s from secret %s key %s, which no manifest has", where, e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
	for _, role := range []string{"app", "web", "balancer"} {
		if roles[role] == nil {
			t.Fatalf("no Deployment runs -role %s", role)
		}
	}
	if !slices.ContainsFunc(roles["balancer"].Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool {
		return e.Name == "THREETIER_CLUSTER_KEY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	}) {
		t.Error("the balancers' cluster key does not come from a Secret")
	}

	// Every Service with a selector selects the pods of a Deployment of its
	// namespace, on ports those pods have.
	for _, s := range m.services {
		where := "Service " + s.Name
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			if s.Spec.ExternalName == "" || s.Spec.Selector != nil {
				t.Errorf("%s: an ExternalName service needs a name and no selector", where)
			}
			continue
		}
		if len(s.Spec.Selector) == 0 {
			t.Errorf("%s: no selector", where)
			continue
		}
		var target *appsv1.Deployment
		for _, d := range m.deployments {
			if d.Namespace == s.Namespace && labelSet(s.Spec.Selector).AsSelector().Matches(labelSet(d.Spec.Template.Labels)) {
				if target != nil {
					t.Errorf("%s: selects the pods of %s and of %s", where, target.Name, d.Name)
				}
				target = d
			}
		}
		if target == nil {
			t.Errorf("%s: selects no Deployment's pods (%v)", where, s.Spec.Selector)
			continue
		}
		c := target.Spec.Template.Spec.Containers[0]
		for _, p := range s.Spec.Ports {
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port)
			}
			if _, ok := containerPort(c, tp, p.Protocol); !ok {
				t.Errorf("%s: port %s targets %s, which %s's pods do not have", where, p.Name, tp.String(), target.Name)
			}
		}
	}

	// Each tier finds the next one by DNS through a headless Service that
	// selects that tier's pods, on the port they serve.
	disc := regexp.MustCompile(`^dns://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)$`)
	for role, next := range map[string]string{"balancer": "web", "web": "app"} {
		args := roles[role].Spec.Template.Spec.Containers[0].Args
		i := slices.Index(args, "-backends")
		if i < 0 {
			t.Errorf("-role %s has no -backends", role)
			continue
		}
		mm := disc.FindStringSubmatch(args[i+1])
		if mm == nil {
			t.Errorf("-role %s: -backends %q is not dns://<service>.<namespace>.svc.cluster.local:<port>", role, args[i+1])
			continue
		}
		svc := findService(m.services, mm[2], mm[1])
		if svc == nil {
			t.Errorf("-role %s: -backends names Service %s/%s, which no manifest has", role, mm[2], mm[1])
			continue
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s: not headless: DNS would give one virtual IP, not the pods", svc.Name)
		}
		if !labelSet(svc.Spec.Selector).AsSelector().Matches(labelSet(roles[next].Spec.Template.Labels)) {
			t.Errorf("Service %s: does not select the -role %s pods", svc.Name, next)
		}
		want, _ := strconv.Atoi(mm[3])
		_, serves := roleServes(t, roles[next].Spec.Template.Spec.Containers[0])
		if _, ok := serves[int32(want)]; !ok {
			t.Errorf("-role %s: -backends port %d, where -role %s listens on %v", role, want, next, serves)
		}
	}

	// The front doors find each other through every pod, ready or not.
	peers := findService(m.services, "shop", "balancer-peers")
	if peers == nil || peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses {
		t.Errorf("balancer-peers: want a headless Service that publishes pods before they are ready: %+v", peers)
	}

	checkDatabase(t, m, roles["app"].Spec.Template.Spec.Containers[0])
}

// checkDatabase checks the PostgreSQL cluster and how the app servers
// reach it: a primary and two replicas, bootstrapped with the owner of a
// Secret the manifests have; writes on the operator's -rw Service, reads
// on its -ro one, as that owner.
func checkDatabase(t *testing.T, m *manifests, app corev1.Container) {
	t.Helper()
	if len(m.clusters) != 1 {
		t.Fatalf("%d CloudNativePG Clusters, want one", len(m.clusters))
	}
	c := m.clusters[0]
	if c.Spec.Instances != 3 {
		t.Errorf("Cluster %s: %d instances, want a primary and two replicas", c.Name, c.Spec.Instances)
	}
	initdb := c.Spec.Bootstrap.InitDB
	for _, key := range []string{"username", "password"} {
		if !hasSecretKey(m.secrets, c.Namespace, initdb.Secret.Name, key) {
			t.Errorf("Cluster %s: the owner's secret %q has no %s", c.Name, initdb.Secret.Name, key)
		}
	}
	env := map[string]string{}
	for _, e := range app.Env {
		env[e.Name] = e.Value
	}
	for name, service := range map[string]string{"DATABASE_URL": c.Name + "-rw", "THREETIER_DATA_REPLICAS": c.Name + "-ro"} {
		want := fmt.Sprintf("postgres://$(DB_USER):$(DB_PASSWORD)@%s.%s.svc.cluster.local:5432/%s?sslmode=require", service, c.Namespace, initdb.Database)
		if env[name] != want {
			t.Errorf("the app's %s = %q, want %s", name, env[name], want)
		}
	}
	// $(DB_USER) expands only to a variable defined before it.
	for i, name := range []string{"DB_USER", "DB_PASSWORD"} {
		j := slices.IndexFunc(app.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if j < 0 || j > slices.IndexFunc(app.Env, func(e corev1.EnvVar) bool { return e.Name == "DATABASE_URL" }) {
			t.Errorf("the app's %s is not defined before DATABASE_URL", name)
			continue
		}
		ref := app.Env[j].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != initdb.Secret.Name || ref.SecretKeyRef.Key != []string{"username", "password"}[i] {
			t.Errorf("the app's %s does not come from the owner's secret %s", name, initdb.Secret.Name)
		}
	}
}

func findService(list []*corev1.Service, ns, name string) *corev1.Service {
	for _, s := range list {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}

func hasSecretKey(list []*corev1.Secret, ns, name, key string) bool {
	for _, s := range list {
		if s.Namespace == ns && s.Name == name {
			_, a := s.StringData[key]
			_, b := s.Data[key]
			return a || b
		}
	}
	return false
}

// TestImagesHaveDockerfiles: every image the manifests name is built by
// a Dockerfile of this repository (ghcr.io/threetier/shop by
// examples/shop/Dockerfile), and every example's Dockerfile builds its
// own binary, static, onto a distroless base run as a non-root user.
func TestImagesHaveDockerfiles(t *testing.T) {
	m := load(t)
	images := map[string]bool{}
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			images[c.Image] = true
		}
	}
	if len(images) == 0 {
		t.Fatal("the manifests name no image")
	}
	for image := range images {
		name, ok := strings.CutPrefix(image, "ghcr.io/threetier/")
		name, _, _ = strings.Cut(name, ":")
		if !ok || strings.Contains(name, "/") {
			t.Errorf("image %q is none of this repository's (ghcr.io/threetier/NAME)", image)
			continue
		}
		if _, err := os.Stat(filepath.Join("..", "..", name, "Dockerfile")); err != nil {
			t.Errorf("image %q: no examples/%s/Dockerfile builds it: %v", image, name, err)
		}
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	built := map[string]bool{}
	for _, file := range files {
		name := filepath.Base(filepath.Dir(file))
		built[name] = true
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		checkDockerfile(t, file, name, stripComments(string(b)))
	}
	for _, name := range []string{"shop", "lb", "static"} {
		if !built[name] {
			t.Errorf("examples/%s has no Dockerfile", name)
		}
	}
}

// checkDockerfile checks that the Dockerfile at file builds
// ./examples/name, from the repository's root, into a static binary that
// a distroless image runs as a non-root user.
func checkDockerfile(t *testing.T, file, name, text string) {
	t.Helper()
	var from []string
	for line := range strings.SplitSeq(text, "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.EqualFold(f[0], "FROM") {
			from = append(from, f[1])
		}
	}
	switch {
	case len(from) < 2:
		t.Errorf("%s: %d stages, want a build stage and a final one", file, len(from))
		return
	case !strings.HasPrefix(from[len(from)-1], "gcr.io/distroless/static") || !strings.HasSuffix(from[len(from)-1], ":nonroot"):
		t.Errorf("%s: the final stage is %s, want gcr.io/distroless/static...:nonroot", file, from[len(from)-1])
	}
	build := regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 go build .*-o /(\S+) \./examples/(\S+)\s*$`).FindStringSubmatch(text)
	if build == nil || build[1] != name || build[2] != name {
		t.Errorf("%s: no RUN CGO_ENABLED=0 go build -o /%s ./examples/%s", file, name, name)
	}
	for _, want := range []string{"COPY go.mod go.sum ./", "COPY --from=build /" + name + " /" + name, "USER 65532:65532", `ENTRYPOINT ["/` + name + `"]`} {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
}
