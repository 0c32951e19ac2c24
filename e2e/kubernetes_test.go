package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/changebank/changebank/internal/app"
	"github.com/changebank/changebank/internal/apptest"
)

// No cluster runs where this project is built, so the Kubernetes manifests
// are checked as the compose file is: rendered the way kubectl apply -k
// renders them, every object decoded strictly into the API's own Go types
// (a misspelt field is an error, where kubectl would only warn or drop it),
// then held to the app they deploy.

var kubernetesDir = repo("deploy/kubernetes")

// appShutdownBound is how long serve waits for requests in flight after
// SIGTERM before it closes what is left (internal/app).
const appShutdownBound = 10 * time.Second

// kubeManifests is every object deploy/kubernetes renders.
type kubeManifests struct {
	namespace      *corev1.Namespace
	serviceAccount *corev1.ServiceAccount
	deployment     *appsv1.Deployment
	service        *corev1.Service
	configMaps     map[string]*corev1.ConfigMap
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	route          *gatewayv1.HTTPRoute
}

// renderKubernetes renders dir with kustomize's Go API, the library
// kubectl's -k runs, and decodes each object strictly by its kind.
func renderKubernetes(t *testing.T, dir string) kubeManifests {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize refuses %s: %v", dir, err)
	}
	m := kubeManifests{configMaps: map[string]*corev1.ConfigMap{}}
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind := r.GetApiVersion() + " " + r.GetKind()
		if err := decodeKubeObject(kind, doc, &m); err != nil {
			t.Errorf("%s %s: %v", kind, r.GetName(), err)
		}
	}
	if m.namespace == nil || m.serviceAccount == nil || m.deployment == nil || m.service == nil || len(m.configMaps) == 0 ||
		m.pdb == nil || m.hpa == nil || m.route == nil {
		t.Fatalf("%s lacks an object: %+v", dir, m)
	}
	return m
}

// decodeKubeObject decodes doc strictly into the type of kind ("apiVersion
// Kind") and files it in m. A kind the deployment does not use, or a
// second object of a kind it uses once, is an error.
func decodeKubeObject(kind string, doc []byte, m *kubeManifests) error {
	switch kind {
	case "v1 Namespace":
		return decodeOnce(doc, &m.namespace)
	case "v1 ServiceAccount":
		return decodeOnce(doc, &m.serviceAccount)
	case "apps/v1 Deployment":
		return decodeOnce(doc, &m.deployment)
	case "v1 Service":
		return decodeOnce(doc, &m.service)
	case "v1 ConfigMap":
		var cm *corev1.ConfigMap
		if err := decodeOnce(doc, &cm); err != nil {
			return err
		}
		m.configMaps[cm.Name] = cm
		return nil
	case "policy/v1 PodDisruptionBudget":
		return decodeOnce(doc, &m.pdb)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return decodeOnce(doc, &m.hpa)
	case "gateway.networking.k8s.io/v1 HTTPRoute":
		return decodeOnce(doc, &m.route)
	}
	return errors.New("a kind this test does not know: decode it into its Go type here")
}

// decodeOnce decodes doc into a new *dst, refusing unknown and duplicate
// fields, and refuses a second object where *dst is already set.
func decodeOnce[T any](doc []byte, dst **T) error {
	if *dst != nil {
		return errors.New("a second object of this kind")
	}
	*dst = new(T)
	return yaml.UnmarshalStrict(doc, *dst)
}

// secretSettings are the settings that must come from the Secret, never
// from the ConfigMap, whose values anyone who can read the namespace's
// configuration sees.
var secretSettings = []string{"APP_SECRET_KEY", "CLIENT_SECRET", "FUSIONAUTH_API_KEY"}

func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	m := renderKubernetes(t, kubernetesDir)
	// The decoder refuses what kubectl would drop with a warning: a probe
	// misspelt this way would leave the pods with no readiness at all.
	doc, err := yaml.Marshal(m.deployment)
	if err != nil {
		t.Fatal(err)
	}
	misspelt := strings.Replace(string(doc), "readinessProbe:", "readinesProbe:", 1)
	if misspelt == string(doc) {
		t.Fatal("the Deployment has no readinessProbe to misspell")
	}
	var check kubeManifests
	if err := decodeKubeObject("apps/v1 Deployment", []byte(misspelt), &check); err == nil || !strings.Contains(err.Error(), "readinesProbe") {
		t.Errorf("a misspelt field decoded: %v", err)
	}
	if err := decodeKubeObject("gateway.networking.k8s.io/v1 HTTPRoute", []byte("spec:\n  hostname: [a.example]\n"), &check); err == nil {
		t.Error("an HTTPRoute with hostname for hostnames decoded")
	}
	if err := decodeKubeObject("networking.k8s.io/v1 Ingress", []byte("spec: {}\n"), &check); err == nil {
		t.Error("a kind the test does not check was let through")
	}
}

// podEnv is what the app's environment holds in a pod: every ConfigMap
// key envFrom brings, and each env entry (secretKeyRef values as "").
func podEnv(t *testing.T, m kubeManifests) (settingsFrom map[string]string, secretRefs []corev1.SecretKeySelector) {
	t.Helper()
	c := appContainer(t, m)
	settingsFrom = map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil || from.Prefix != "" {
			t.Fatalf("envFrom %+v: only whole ConfigMaps, with no prefix", from)
		}
		cm := m.configMaps[from.ConfigMapRef.Name]
		if cm == nil {
			t.Fatalf("envFrom names ConfigMap %q, which the manifests do not make", from.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			settingsFrom[k] = v
		}
	}
	for _, e := range c.Env {
		if _, dup := settingsFrom[e.Name]; dup {
			t.Errorf("%s is set twice: in the ConfigMap and in env", e.Name)
		}
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			secretRefs = append(secretRefs, *e.ValueFrom.SecretKeyRef)
			if e.ValueFrom.SecretKeyRef.Key != e.Name {
				t.Errorf("%s comes from the Secret's key %s: one name for both keeps the docs' command right", e.Name, e.ValueFrom.SecretKeyRef.Key)
			}
		case e.ValueFrom != nil:
			t.Errorf("%s comes from %+v: settings come from the ConfigMap, secrets from the Secret", e.Name, e.ValueFrom)
		default:
			settingsFrom[e.Name] = e.Value
		}
	}
	return settingsFrom, secretRefs
}

func appContainer(t *testing.T, m kubeManifests) corev1.Container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 || len(m.deployment.Spec.Template.Spec.InitContainers) != 0 {
		t.Fatalf("want the app's one container, got %d (and %d init)", len(cs), len(m.deployment.Spec.Template.Spec.InitContainers))
	}
	return cs[0]
}

// containerPort resolves a probe's or Service's port, by name or number,
// to one the container declares.
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	t.Fatalf("port %s is none the container declares (%+v)", p.String(), c.Ports)
	return 0
}

// randomSecret is a fresh secret of the kind the docs tell people to make.
func randomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// docsSecretCommand returns the keys and namespace of the kubectl create
// secret command in docs/kubernetes.md that makes the Secret named name.
func docsSecretCommand(t *testing.T, name string) (keys []string, namespace string) {
	t.Helper()
	raw, err := os.ReadFile(repo("docs/kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continued lines, then find the command.
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	var cmd string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "kubectl") && strings.Contains(line, "create secret generic "+name) {
			cmd = line
			break
		}
	}
	if cmd == "" {
		t.Fatalf("docs/kubernetes.md has no `kubectl create secret generic %s` command", name)
	}
	for _, m := range regexp.MustCompile(`--from-(?:literal|file)=([A-Z_]+)=`).FindAllStringSubmatch(cmd, -1) {
		keys = append(keys, m[1])
	}
	if m := regexp.MustCompile(`(?:-n|--namespace)[ =]([a-z0-9-]+)`).FindStringSubmatch(cmd); m != nil {
		namespace = m[1]
	}
	return keys, namespace
}

func TestKubernetesManifestsFitTheApp(t *testing.T) {
	m := renderKubernetes(t, kubernetesDir)
	pod := m.deployment.Spec.Template
	c := appContainer(t, m)
	env, secretRefs := podEnv(t, m)
	known := map[string]bool{}
	for _, name := range app.SettingNames() {
		known[name] = true
	}

	t.Run("every variable is a setting the app reads", func(t *testing.T) {
		for name := range env {
			if !known[name] {
				t.Errorf("%s is no setting of the app (go run . -h lists them)", name)
			}
			if slices.Contains(secretSettings, name) {
				t.Errorf("%s is in the ConfigMap: it is a secret, for the Secret", name)
			}
		}
		for _, ref := range secretRefs {
			if !known[ref.Key] {
				t.Errorf("%s is no setting of the app", ref.Key)
			}
		}
	})

	t.Run("the settings pass the app's checks", func(t *testing.T) {
		full := map[string]string{}
		for k, v := range env {
			full[k] = v
		}
		for _, ref := range secretRefs {
			full[ref.Key] = randomSecret()
		}
		cfg, err := app.LoadConfig(nil, apptest.Getenv(full), io.Discard)
		if err != nil {
			t.Fatalf("the app would not start with the manifests' settings:\n%v", err)
		}
		if !strings.HasPrefix(cfg.AppURL, "https://") {
			t.Errorf("APP_URL %s: browsers reach the app through the gateway over https (Secure, __Host- cookies)", cfg.AppURL)
		}
		_, port, err := net.SplitHostPort(cfg.ListenAddr)
		if err != nil || port != strconv.Itoa(int(containerPort(t, c, intstr.FromString("http")))) {
			t.Errorf("the app listens on %s, the container port named http is %+v", cfg.ListenAddr, c.Ports)
		}
		_, port, err = net.SplitHostPort(cfg.MetricsAddr)
		if err != nil || port != strconv.Itoa(int(containerPort(t, c, intstr.FromString("metrics")))) {
			t.Errorf("the metrics listen on %q, the container port named metrics is %+v", cfg.MetricsAddr, c.Ports)
		}
		if cfg.EmbeddedIdP || cfg.AttackerAddr != "" {
			t.Error("the embedded provider and the attacker page are for the local demo")
		}
	})

	t.Run("secrets come from the Secret the docs create", func(t *testing.T) {
		created, ns := docsSecretCommand(t, "changebank-secrets")
		if ns != m.namespace.Name {
			t.Errorf("the docs create the Secret in namespace %q, the app runs in %q", ns, m.namespace.Name)
		}
		var required []string
		for _, ref := range secretRefs {
			if ref.Name != "changebank-secrets" {
				t.Errorf("%s comes from Secret %q", ref.Key, ref.Name)
			}
			if ref.Optional == nil || !*ref.Optional {
				required = append(required, ref.Key)
			}
		}
		for _, name := range secretSettings {
			if !slices.ContainsFunc(secretRefs, func(r corev1.SecretKeySelector) bool { return r.Key == name }) {
				t.Errorf("%s is not taken from the Secret", name)
			}
		}
		for _, key := range required {
			if !slices.Contains(created, key) {
				t.Errorf("the pods need the Secret's key %s, which the docs' command does not create (it creates %v)", key, created)
			}
		}
		for _, key := range created {
			if !slices.ContainsFunc(secretRefs, func(r corev1.SecretKeySelector) bool { return r.Key == key }) {
				t.Errorf("the docs create %s, which no pod reads", key)
			}
		}
	})

	t.Run("the docs' commands name these objects", func(t *testing.T) {
		raw, err := os.ReadFile(repo("docs/kubernetes.md"))
		if err != nil {
			t.Fatal(err)
		}
		commands := 0
		for _, line := range strings.Split(string(raw), "\n") {
			if !strings.HasPrefix(strings.TrimLeft(line, "$( "), "kubectl ") && !strings.Contains(line, "$(kubectl ") {
				continue
			}
			commands++
			for _, got := range regexp.MustCompile(`(?:-n|--namespace)[ =]([a-z0-9-]+)`).FindAllStringSubmatch(line, -1) {
				if got[1] != m.namespace.Name {
					t.Errorf("%q: the namespace is %s", line, m.namespace.Name)
				}
			}
			for _, got := range regexp.MustCompile(`deployment/([a-z0-9-]+)`).FindAllStringSubmatch(line, -1) {
				if got[1] != m.deployment.Name {
					t.Errorf("%q: the Deployment is %s", line, m.deployment.Name)
				}
			}
			for _, got := range regexp.MustCompile(`secret (?:generic )?([a-z0-9-]+)`).FindAllStringSubmatch(line, -1) {
				if got[1] != "changebank-secrets" {
					t.Errorf("%q: the Secret the pods read is changebank-secrets", line)
				}
			}
			for _, got := range regexp.MustCompile(`-[fk] (\S+)`).FindAllStringSubmatch(line, -1) {
				if _, err := os.Stat(repo(got[1])); err != nil {
					t.Errorf("%q: %v", line, err)
				}
			}
		}
		if commands < 8 {
			t.Errorf("found %d kubectl commands in docs/kubernetes.md: is the page there?", commands)
		}
	})

	t.Run("ports and probes", func(t *testing.T) {
		if len(c.Ports) != 2 || c.Ports[0].Name != "http" || c.Ports[1].Name != "metrics" {
			t.Errorf("container ports %+v: want the app's, named http, and the metrics', named metrics", c.Ports)
		}
		for _, p := range m.service.Spec.Ports {
			if containerPort(t, c, p.TargetPort) != containerPort(t, c, intstr.FromString("http")) {
				t.Errorf("the Service exposes port %s: only the app's own, never the metrics", p.TargetPort.String())
			}
		}
		// Prometheus is told where to scrape, and it is the metrics listener.
		ann := pod.Annotations
		metricsPort := strconv.Itoa(int(containerPort(t, c, intstr.FromString("metrics"))))
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != metricsPort || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("scrape annotations %v: want scrape true, port %s, path /metrics", ann, metricsPort)
		}
		for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("no HTTP %s probe", name)
				continue
			}
			want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name]
			if p.HTTPGet.Path != want {
				t.Errorf("%s probe on %s, want %s", name, p.HTTPGet.Path, want)
			}
			containerPort(t, c, p.HTTPGet.Port)
		}
		if c.StartupProbe != nil {
			t.Error("a startup probe: /healthz answers from the first moment, so liveness needs none")
		}
	})

	t.Run("selectors find the pods", func(t *testing.T) {
		labels := pod.Labels
		matches := func(what string, sel map[string]string) {
			if len(sel) == 0 {
				t.Errorf("%s selects nothing", what)
			}
			for k, v := range sel {
				if labels[k] != v {
					t.Errorf("%s selects %s=%s, the pods are labelled %v", what, k, v, labels)
				}
			}
		}
		if m.deployment.Spec.Selector == nil || len(m.deployment.Spec.Selector.MatchExpressions) > 0 ||
			m.pdb.Spec.Selector == nil || len(m.pdb.Spec.Selector.MatchExpressions) > 0 {
			t.Fatal("the selectors are matchLabels only")
		}
		matches("the Deployment", m.deployment.Spec.Selector.MatchLabels)
		matches("the Service", m.service.Spec.Selector)
		matches("the PodDisruptionBudget", m.pdb.Spec.Selector.MatchLabels)
		for i, tsc := range pod.Spec.TopologySpreadConstraints {
			if tsc.LabelSelector == nil {
				t.Errorf("topology spread %d has no selector", i)
				continue
			}
			matches(fmt.Sprintf("topology spread %d", i), tsc.LabelSelector.MatchLabels)
		}
		ref := m.hpa.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != m.deployment.Name {
			t.Errorf("the autoscaler scales %+v", ref)
		}
		if pod.Spec.ServiceAccountName != m.serviceAccount.Name {
			t.Errorf("the pods run as service account %q", pod.Spec.ServiceAccountName)
		}
		for _, p := range m.service.Spec.Ports {
			containerPort(t, c, p.TargetPort)
		}
	})

	t.Run("the route reaches the Service at APP_URL's host", func(t *testing.T) {
		appURL, _ := url.Parse(env["APP_URL"])
		if !slices.Equal(m.route.Spec.Hostnames, []gatewayv1.Hostname{gatewayv1.Hostname(appURL.Hostname())}) {
			t.Errorf("the route answers for %v, APP_URL is %s", m.route.Spec.Hostnames, env["APP_URL"])
		}
		if len(m.route.Spec.ParentRefs) == 0 {
			t.Error("the route attaches to no Gateway")
		}
		servicePorts := map[int32]bool{}
		for _, p := range m.service.Spec.Ports {
			servicePorts[p.Port] = true
		}
		for _, rule := range m.route.Spec.Rules {
			for _, b := range rule.BackendRefs {
				if string(b.Name) != m.service.Name || b.Kind != nil && *b.Kind != "Service" || b.Port == nil || !servicePorts[int32(*b.Port)] {
					t.Errorf("the route sends traffic to %+v, not to the Service's ports %v", b.BackendObjectReference, m.service.Spec.Ports)
				}
			}
		}
		if len(m.route.Spec.Rules) != 1 || len(m.route.Spec.Rules[0].Matches) != 1 || m.route.Spec.Rules[0].Matches[0].Path == nil ||
			*m.route.Spec.Rules[0].Matches[0].Path.Value != "/" {
			t.Errorf("the route sends only part of the app's paths: %+v", m.route.Spec.Rules)
		}
	})

	t.Run("the image is pinned", func(t *testing.T) {
		image := c.Image
		name, digest, hasDigest := strings.Cut(image, "@")
		if hasDigest && !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
			t.Errorf("image %s: a malformed digest", image)
		}
		tag := ""
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			tag = name[i+1:]
		}
		if !hasDigest && !regexp.MustCompile(`^v?[0-9]+\.[0-9]+(\.[0-9]+)?([-+][0-9A-Za-z.-]+)?$`).MatchString(tag) {
			t.Errorf("image %s: pin a release tag or a digest (never latest, never none)", image)
		}
		if c.ImagePullPolicy == corev1.PullAlways {
			t.Error("imagePullPolicy Always: a pinned image needs no pull on every start")
		}
	})

	t.Run("non-root, read-only, nothing more", func(t *testing.T) {
		ps, cs := pod.Spec.SecurityContext, c.SecurityContext
		if ps == nil || cs == nil {
			t.Fatal("a pod and a container securityContext, both")
		}
		isTrue := func(b *bool) bool { return b != nil && *b }
		if !isTrue(ps.RunAsNonRoot) || !isTrue(cs.RunAsNonRoot) {
			t.Error("runAsNonRoot, for the pod and the container")
		}
		if ps.RunAsUser == nil || *ps.RunAsUser == 0 || cs.RunAsUser != nil && *cs.RunAsUser == 0 {
			t.Error("a non-zero runAsUser")
		} else if uid := dockerfileUser(t); uid != strconv.FormatInt(*ps.RunAsUser, 10) {
			t.Errorf("the pods run as uid %d, the Dockerfile's USER is %s", *ps.RunAsUser, uid)
		}
		if !isTrue(cs.ReadOnlyRootFilesystem) {
			t.Error("readOnlyRootFilesystem: the app writes nothing to disk")
		}
		if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation: false")
		}
		if isTrue(cs.Privileged) {
			t.Error("privileged")
		}
		if cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0 {
			t.Errorf("capabilities %+v: drop ALL, add none", cs.Capabilities)
		}
		for what, sp := range map[string]*corev1.SeccompProfile{"pod": ps.SeccompProfile, "container": cs.SeccompProfile} {
			if sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s seccompProfile %+v: RuntimeDefault", what, sp)
			}
		}
		if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken ||
			m.serviceAccount.AutomountServiceAccountToken == nil || *m.serviceAccount.AutomountServiceAccountToken {
			t.Error("a service account token in the pods: the app never calls the Kubernetes API")
		}
		if pod.Spec.HostNetwork || pod.Spec.HostPID || pod.Spec.HostIPC || len(pod.Spec.Volumes) > 0 {
			t.Error("host namespaces or volumes: the app needs none")
		}
		if m.namespace.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Error("the namespace does not enforce the restricted Pod Security Standard the pods meet")
		}
	})

	t.Run("resources", func(t *testing.T) {
		r := c.Resources
		if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
			t.Errorf("resources %+v: CPU and memory requests (the autoscaler's base) and a memory limit", r)
		}
		if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
			t.Error("a memory limit below the request")
		}
	})

	t.Run("rolling updates, drains and scaling keep replicas serving", func(t *testing.T) {
		d := m.deployment.Spec
		if d.Replicas == nil || *d.Replicas != 3 {
			t.Errorf("replicas %v, want 3", d.Replicas)
		}
		if d.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Strategy.RollingUpdate == nil ||
			d.Strategy.RollingUpdate.MaxUnavailable == nil || d.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 ||
			d.Strategy.RollingUpdate.MaxSurge == nil || d.Strategy.RollingUpdate.MaxSurge.IntValue() < 1 {
			t.Errorf("strategy %+v: RollingUpdate, maxUnavailable 0, a surge of at least 1", d.Strategy)
		}
		if m.hpa.Spec.MinReplicas == nil || *m.hpa.Spec.MinReplicas != *d.Replicas || m.hpa.Spec.MaxReplicas <= *d.Replicas {
			t.Errorf("autoscaler %d..%d: from the Deployment's %d up", *m.hpa.Spec.MinReplicas, m.hpa.Spec.MaxReplicas, *d.Replicas)
		}
		if len(m.hpa.Spec.Metrics) == 0 {
			t.Error("the autoscaler scales on nothing")
		}
		pdb := m.pdb.Spec
		if pdb.MinAvailable != nil || pdb.MaxUnavailable == nil || pdb.MaxUnavailable.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget %+v: maxUnavailable 1, which lets a drain through at any scale", pdb)
		}
		if len(pod.Spec.TopologySpreadConstraints) == 0 {
			t.Error("no topology spread: three replicas may share one node")
		}
	})

	t.Run("drain and shutdown fit the grace period, probes fit the drain", func(t *testing.T) {
		full := map[string]string{}
		for k, v := range env {
			full[k] = v
		}
		for _, ref := range secretRefs {
			full[ref.Key] = randomSecret()
		}
		cfg, err := app.LoadConfig(nil, apptest.Getenv(full), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		drain := cfg.DrainPeriod
		if drain < 10*time.Second {
			t.Errorf("DRAIN_PERIOD %s: Kubernetes removes a terminating pod's endpoint asynchronously, often seconds later; the pods must keep serving that long", drain)
		}
		// SIGTERM, then the drain, then the graceful shutdown, before SIGKILL.
		grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
		if grace < drain+app.ShutdownBound+5*time.Second {
			t.Errorf("terminationGracePeriodSeconds %s: the app drains for %s, then shuts down for up to %s, and SIGKILL must not cut either short", grace, drain, app.ShutdownBound)
		}
		// A balancer that polls /readyz as the kubelet does sees the 503
		// while the drain still serves its requests.
		ready := c.ReadinessProbe
		if window := time.Duration(ready.PeriodSeconds*ready.FailureThreshold+ready.TimeoutSeconds) * time.Second; window >= drain {
			t.Errorf("readiness notices the drain after up to %s, not within the %s drain", window, drain)
		}
		// Liveness never kills a pod that drains or shuts down gracefully.
		live := c.LivenessProbe
		if window := time.Duration(live.PeriodSeconds*live.FailureThreshold) * time.Second; window <= app.ShutdownBound {
			t.Errorf("liveness fails after %s, within the %s a shutdown may take", window, app.ShutdownBound)
		}
		for name, p := range map[string]*corev1.Probe{"readiness": ready, "liveness": live} {
			if p.TimeoutSeconds < 1 || p.PeriodSeconds <= p.TimeoutSeconds {
				t.Errorf("%s probe: timeout %ds, period %ds", name, p.TimeoutSeconds, p.PeriodSeconds)
			}
		}
	})
}

// dockerfileUser is the numeric user the Dockerfile's image runs as:
// runAsNonRoot can only check a number.
func dockerfileUser(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(repo("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	users := regexp.MustCompile(`(?m)^USER\s+([0-9]+)(?::[0-9]+)?\s*$`).FindAllStringSubmatch(string(raw), -1)
	if len(users) != 1 {
		t.Fatalf("the Dockerfile needs one numeric USER (runAsNonRoot cannot verify a name), found %v", users)
	}
	return users[0][1]
}

// TestKubernetesProbesAnswer runs the app with the manifests' settings
// (its addresses moved to free loopback ports, the provider to the
// stand-in) and asks the probes' paths what the kubelet would, and the
// metrics listener what the scrape annotations tell Prometheus to ask.
func TestKubernetesProbesAnswer(t *testing.T) {
	m := renderKubernetes(t, kubernetesDir)
	c := appContainer(t, m)
	env, _ := podEnv(t, m)
	for _, where := range []string{"APP_URL", "ISSUER", "LISTEN_ADDR"} {
		delete(env, where)
	}
	if env["METRICS_ADDR"] == "" {
		t.Fatal("the manifests do not turn the metrics on")
	}
	metricsAddr := apptest.FreePort(t)
	env["METRICS_ADDR"] = metricsAddr
	d := startDemo(t, env)
	resp, err := http.Get("http://" + metricsAddr + m.deployment.Spec.Template.Annotations["prometheus.io/path"])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "changebank_build_info") {
		t.Errorf("the scrape answers %d:\n%.300s", resp.StatusCode, body)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		resp, err := http.Get(d.base + p.HTTPGet.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s answers %d to a ready app", p.HTTPGet.Path, resp.StatusCode)
		}
	}
}
