"""Static checks of helm/switchboard, run by tests/deploy/helm-test.sh.

Helm itself renders and lints (helm-python-sdk: Helm v4's Go SDK as a library, no helm binary);
kubernetes-validate checks every rendered object against the OpenAPI schema of one Kubernetes
version, strictly (unknown fields fail). What neither checks, this file does: the objects refer to
each other correctly (selectors, named ports, Secret and ConfigMap keys), and every value is
documented in README.md and typed in values.schema.json.

Usage: python check.py COMMAND ... (see main()). Exits 1 with the problems on stderr.
"""

import base64
import copy
import json
import re
import sys
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

CHART = Path(__file__).resolve().parents[3] / "helm" / "switchboard"
RELEASE = "sb"
NAMESPACE = "switchboard"


class CheckFailed(Exception):
    pass


def load_values(files, overrides=None):
    """Values files merged left to right (later wins), then the JSON overrides."""
    values = {}
    for file in files:
        values = merge(values, yaml.safe_load(Path(file).read_text()) or {})
    return merge(values, overrides or {})


def merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def render(values):
    """What `helm template` does: values.schema.json first, then the templates. Returns the
    Kubernetes objects (NOTES.txt and empty documents left out)."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


# --- kubernetes-validate -------------------------------------------------------------------

# Custom resources have no schema in kubernetes-validate; they are checked by cross_check().
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def validate(objects, kube_version):
    """Strict OpenAPI validation of every object; returns a list of problems."""
    problems = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            problems.append(f"{name}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name}: no schema in Kubernetes {kube_version}: {error}")
    return problems


# --- references between objects ------------------------------------------------------------


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def cross_check(objects, values):
    """What the API server would accept but a cluster would not run: dangling references."""
    problems = []
    deployments = by_kind(objects, "Deployment")
    services = by_kind(objects, "Service")
    configmaps = {o["metadata"]["name"]: o for o in by_kind(objects, "ConfigMap")}
    secrets = {o["metadata"]["name"]: o for o in by_kind(objects, "Secret")}
    pod_labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in deployments}

    def ports_of(deployment):
        return {p["name"]: p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}

    for d in deployments:
        name = d["metadata"]["name"]
        spec = d["spec"]["template"]["spec"]
        if not matches(d["spec"]["selector"]["matchLabels"], pod_labels[name]):
            problems.append(f"Deployment/{name}: selector does not match its pod labels")
        ports = ports_of(d)
        for c in spec["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if port is None:
                    problems.append(f"Deployment/{name}: no {probe}")
                elif isinstance(port, str) and port not in ports:
                    problems.append(f"Deployment/{name}: {probe} names port {port!r}, container has {sorted(ports)}")
            paths = {c.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
            if paths != {"/healthz", "/readyz"}:
                problems.append(f"Deployment/{name}: probes on {paths}, expected /healthz and /readyz")
            sc = c.get("securityContext", {})
            if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                    and "ALL" in sc.get("capabilities", {}).get("drop", [])):
                problems.append(f"Deployment/{name}: container security (read-only root, no escalation, drop ALL) missing")
            if not (spec.get("securityContext", {}).get("runAsNonRoot") or sc.get("runAsNonRoot")):
                problems.append(f"Deployment/{name}: runAsNonRoot missing")
            env = {e["name"]: e for e in c.get("env", [])}
            if len(env) != len(c.get("env", [])):
                problems.append(f"Deployment/{name}: duplicate environment variable names")
            config_path = env.get("SWITCHBOARD_CONFIG", {}).get("value")
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            if not config_path or not any(config_path.startswith(p + "/") for p in mounts.values()):
                problems.append(f"Deployment/{name}: SWITCHBOARD_CONFIG {config_path!r} is not under a mount")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in secrets and ref["name"] != values.get("auth", {}).get("existingSecret"):
                    problems.append(f"Deployment/{name}: env {e['name']} refers to unknown Secret {ref['name']}")
                if ref and ref["name"] in secrets and ref["key"] not in secrets[ref["name"]].get("data", {}) and not ref.get("optional"):
                    problems.append(f"Deployment/{name}: env {e['name']} needs key {ref['key']}")
        for v in spec.get("volumes", []):
            cm = v.get("configMap")
            if cm:
                if cm["name"] not in configmaps:
                    problems.append(f"Deployment/{name}: volume refers to unknown ConfigMap {cm['name']}")
                    continue
                for item in cm.get("items", []):
                    if item["key"] not in configmaps[cm["name"]]["data"]:
                        problems.append(f"Deployment/{name}: ConfigMap {cm['name']} has no key {item['key']}")

    def deployment_for(selector):
        return [d for d in deployments if matches(selector, pod_labels[d["metadata"]["name"]])]

    service_ports = {}
    for s in services:
        name = s["metadata"]["name"]
        targets = deployment_for(s["spec"]["selector"])
        if len(targets) != 1:
            problems.append(f"Service/{name}: selector matches {len(targets)} Deployments")
            continue
        ports = ports_of(targets[0])
        for p in s["spec"]["ports"]:
            if p["targetPort"] not in ports:
                problems.append(f"Service/{name}: targetPort {p['targetPort']!r} is not a container port")
        service_ports[name] = ({p["name"] for p in s["spec"]["ports"]}, s["metadata"]["labels"])

    for ing in by_kind(objects, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                svc = path["backend"]["service"]
                if svc["name"] not in service_ports or svc["port"]["name"] not in service_ports[svc["name"]][0]:
                    problems.append(f"Ingress/{ing['metadata']['name']}: backend {svc} does not exist")
        annotations = ing["metadata"].get("annotations", {})
        for key in ("nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"):
            if int(annotations.get(key, "0")) < 60:
                problems.append(f"Ingress/{ing['metadata']['name']}: {key} missing or below 60 s")

    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        found = [d for d in deployments if d["metadata"]["name"] == target["name"]]
        if target["kind"] != "Deployment" or not found:
            problems.append(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: target {target} does not exist")
        elif "replicas" in found[0]["spec"]:
            problems.append(f"Deployment/{target['name']}: sets replicas while an HPA scales it")

    for kind in ("PodDisruptionBudget",):
        for o in by_kind(objects, kind):
            if len(deployment_for(o["spec"]["selector"]["matchLabels"])) != 1:
                problems.append(f"{kind}/{o['metadata']['name']}: selector does not match one Deployment")

    for np in by_kind(objects, "NetworkPolicy"):
        targets = deployment_for(np["spec"]["podSelector"]["matchLabels"])
        if len(targets) != 1:
            problems.append(f"NetworkPolicy/{np['metadata']['name']}: podSelector matches {len(targets)} Deployments")
            continue
        ports = ports_of(targets[0])
        for rule in np["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                if p["port"] not in ports:
                    problems.append(f"NetworkPolicy/{np['metadata']['name']}: port {p['port']!r} is not a container port")

    for sm in by_kind(objects, "ServiceMonitor"):
        name = sm["metadata"]["name"]
        if sm.get("apiVersion") != "monitoring.coreos.com/v1" or set(sm) - {"apiVersion", "kind", "metadata", "spec"}:
            problems.append(f"ServiceMonitor/{name}: malformed")
        selected = [n for n, (_, labels) in service_ports.items() if matches(sm["spec"]["selector"]["matchLabels"], labels)]
        if len(selected) != 1:
            problems.append(f"ServiceMonitor/{name}: selector matches {len(selected)} Services")
            continue
        for ep in sm["spec"]["endpoints"]:
            if set(ep) - {"port", "path", "interval", "scrapeTimeout"}:
                problems.append(f"ServiceMonitor/{name}: unknown endpoint fields {set(ep)}")
            if ep["port"] not in service_ports[selected[0]][0] or ep.get("path") != "/metrics":
                problems.append(f"ServiceMonitor/{name}: endpoint {ep} is not a /metrics port of {selected[0]}")

    # The gateway's grace period covers its whole shutdown.
    gw = values.get("gateway", {})
    for d in deployments:
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway":
            grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
            delay = int(env["SWITCHBOARD__GATEWAY__SHUTDOWN_DELAY"].rstrip("s"))
            drain = int(env["SWITCHBOARD__GATEWAY__DRAIN_TIMEOUT"].rstrip("s"))
            if grace <= delay + drain or grace != delay + drain + gw.get("terminationGraceMarginSeconds", 5):
                problems.append(f"Deployment/{d['metadata']['name']}: terminationGracePeriodSeconds {grace} vs delay {delay} + drain {drain}")
    return problems


# --- documentation and schema cover every value --------------------------------------------


def leaf_keys(values, prefix=""):
    """Dotted paths of values.yaml down to scalars, lists and empty maps; free-form maps that
    hold examples (annotations, env) count as one key."""
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not path.endswith(("annotations", "Annotations", "env", "Env", "resources", "SecurityContext", "securityContext", "labels", "Labels")):
            keys.extend(leaf_keys(value, path + "."))
        else:
            keys.append(path)
    return keys


def schema_has(schema, path):
    node = schema
    for part in path.split("."):
        props = node.get("properties", {})
        if part not in props:
            return False
        node = props[part]
    return True


def coverage():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    schema = json.loads((CHART / "values.schema.json").read_text())
    problems = []
    keys = leaf_keys(values)
    for key in keys:
        if f"`{key}`" not in readme:
            problems.append(f"README.md does not list `{key}`")
        if not schema_has(schema, key):
            problems.append(f"values.schema.json has no property {key}")
    return len(keys), problems


# --- commands ------------------------------------------------------------------------------


def fail(problems):
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    raise CheckFailed(f"{len(problems)} problem(s)")


def cmd_render(values_file, out_file, kube_version, overrides="{}"):
    """Render VALUES (+ JSON overrides), validate strictly, cross-check; write the objects."""
    values = load_values([values_file], json.loads(overrides))
    objects = render(values)
    problems = validate(objects, kube_version) + cross_check(objects, values)
    if problems:
        fail(problems)
    kinds = {}
    for o in objects:
        kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
    Path(out_file).write_text(yaml.safe_dump_all(objects, sort_keys=False))
    print(f"{Path(values_file).name}: {len(objects)} objects valid for Kubernetes {kube_version} "
          f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")


def cmd_lint(values_file):
    values = load_values([values_file])
    report = helm.lint(CHART, values, strict=True)
    errors = report.get("errors") or []
    findings = [m for m in report.get("messages") or [] if m["severity"] >= 2]
    for m in report.get("messages") or []:
        print(f"  lint [{ {1: 'info', 2: 'warning', 3: 'error'}.get(m['severity'], '?') }] {m['path']}: {m['error']}")
    if errors or findings:
        fail(errors + [f"{m['path']}: {m['error']}" for m in findings])
    print(f"lint (strict) with {Path(values_file).name}: {report['total_charts_linted']} chart, no warnings or errors")


def cmd_coverage():
    count, problems = coverage()
    if problems:
        fail(problems)
    print(f"all {count} keys of values.yaml are in README.md and values.schema.json")


def cmd_expect_failures(invalid_dir, valid_values, kube_version):
    """The checks catch what they should: a missing nats.url, a schema violation, an invalid
    manifest, a dangling reference."""
    problems = []
    invalid = Path(invalid_dir)
    try:
        render(load_values([invalid / "missing-nats-url.yaml"]))
        problems.append("missing-nats-url.yaml rendered")
    except helm.HelmError as error:
        if "nats.url is required" not in str(error):
            problems.append(f"missing-nats-url.yaml failed for another reason: {error}")
        else:
            print(f"missing nats.url fails rendering: {str(error).strip().splitlines()[-1]}")
    try:
        render(load_values([invalid / "schema-violation.yaml"]))
        problems.append("schema-violation.yaml passed values.schema.json")
    except helm.HelmValuesError as error:
        print("schema violation fails: " + "; ".join(l.strip() for l in str(error).splitlines()[1:] if l.strip()))

    values = load_values([valid_values])
    objects = render(values)
    deployment = copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["portt"] = 8000
    found = validate([deployment], kube_version)
    if not found:
        problems.append("a Deployment with an unknown field passed kubernetes-validate")
    else:
        print(f"unknown field fails validation: {found[0]}")
    deployment = copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    found = validate([deployment], kube_version)
    if not found:
        problems.append("a Deployment with replicas: \"two\" passed kubernetes-validate")
    else:
        print(f"wrong type fails validation: {found[0]}")
    broken = copy.deepcopy(objects)
    service = next(o for o in broken if o["kind"] == "Service")
    service["spec"]["ports"][0]["targetPort"] = "no-such-port"
    found = cross_check(broken, values)
    if not found:
        problems.append("a Service pointing at a missing port passed the cross-check")
    else:
        print(f"dangling reference fails the cross-check: {found[0]}")
    if problems:
        fail(problems)


def cmd_kube_play_files(rendered, out_yaml, out_secret_json):
    """From a rendered release, what `podman kube play` can run: Deployments and ConfigMaps to
    out_yaml; the Secret's data as JSON (Podman 4.3 reads secretKeyRef only from JSON secrets,
    while its kube play stores a played Secret as YAML: the caller runs `podman secret create`).
    Prints the Secret's name and the objects left for static checks only."""
    objects = [o for o in yaml.safe_load_all(Path(rendered).read_text()) if o]
    play = [o for o in objects if o["kind"] in ("Deployment", "ConfigMap")]
    secrets = [o for o in objects if o["kind"] == "Secret"]
    Path(out_yaml).write_text(yaml.safe_dump_all(play, sort_keys=False))
    if len(secrets) != 1:
        raise CheckFailed(f"expected one Secret, found {len(secrets)}")
    data = secrets[0].get("data", {})
    for value in data.values():
        base64.b64decode(value, validate=True)
    Path(out_secret_json).write_text(json.dumps(data))
    static = sorted({o["kind"] for o in objects} - {"Deployment", "ConfigMap", "Secret"})
    print(secrets[0]["metadata"]["name"])
    print(" ".join(static))


def main(argv):
    commands = {
        "render": cmd_render,
        "lint": cmd_lint,
        "coverage": cmd_coverage,
        "expect-failures": cmd_expect_failures,
        "kube-play-files": cmd_kube_play_files,
    }
    if len(argv) < 2 or argv[1] not in commands:
        print(f"usage: check.py {{{'|'.join(commands)}}} ARGS...", file=sys.stderr)
        return 2
    try:
        commands[argv[1]](*argv[2:])
    except CheckFailed as error:
        print(f"check.py {argv[1]}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
