"""The cluster deployments agree with docker-compose.yml: Kubernetes (deploy/k8s) and Swarm
(deploy/swarm/stack.yml) use the same images, commands, ports, run settings, memory/CPU limits
and health checks as the compose file, and the Kubernetes manifests validate offline.

The kustomizations are rendered with `kubectl kustomize` where kubectl (kustomize v4+) exists (no cluster
needed); elsewhere the resources a kustomization lists are read with PyYAML and its
namespace, replicas and patches applied the simple way these files use them. The schema check
uses kubernetes-validate's bundled OpenAPI schemas (strict: unknown fields are errors).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
COMPOSE = REPO / "docker-compose.yml"
STACK = REPO / "deploy" / "swarm" / "stack.yml"
#: Oldest Kubernetes the manifests are meant for (StatefulSet/Deployment apps/v1, exec probes).
K8S_VERSION = "1.28.0"
#: ${VAR:-default} in a compose file.
_DEFAULTED = re.compile(r"\$\{([A-Z_]+):-([^}]*)\}")


def interpolate(text: str) -> str:
    """A compose file with every ${VAR:-default} replaced by its default (an unset shell)."""
    return _DEFAULTED.sub(lambda m: m.group(2), text)


def _render_kubectl(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {directory}: {done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge, the subset these patches use: maps merge, lists of named maps merge by
    name; new list items come first, in the patch's order (as kustomize puts them)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list):
        out_list = list(base)
        new: list[Any] = []
        for item in patch:
            named = isinstance(item, dict) and "name" in item
            match = next((i for i, b in enumerate(out_list) if named and isinstance(b, dict)
                          and b.get("name") == item["name"]), None)
            if match is None:
                new.append(item)
            else:
                out_list[match] = _merge(out_list[match], item)
        return new + out_list
    return patch


def _render_pyyaml(directory: Path) -> list[dict[str, Any]]:
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kust.get("resources", []):
        path = directory / resource
        if path.is_dir():
            docs += _render_pyyaml(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        if "namespace" in kust and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = kust["namespace"]
    for rep in kust.get("replicas", []):
        for doc in docs:
            if doc["metadata"]["name"] == rep["name"] and "replicas" in doc.get("spec", {}):
                doc["spec"]["replicas"] = rep["count"]
    for image in kust.get("images", []):
        for doc in docs:
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                if c["image"] == image["name"]:
                    c["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    for patch in kust.get("patches", []):
        p = yaml.safe_load((directory / patch["path"]).read_text())
        for i, doc in enumerate(docs):
            if (doc["kind"], doc["metadata"]["name"]) == (p["kind"], p["metadata"]["name"]):
                docs[i] = _merge(doc, p)
    return docs


def kubectl_kustomize_ok() -> bool:
    """kubectl with kustomize v4+ (``labels``, ``patches``); Debian bookworm's 1.20 has v2."""
    if shutil.which("kubectl") is None:
        return False
    done = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True,
                          timeout=30)
    m = re.search(r"Kustomize Version: v(\d+)", done.stdout)
    return m is not None and int(m.group(1)) >= 4


KUBECTL = kubectl_kustomize_ok()


def render(directory: Path) -> list[dict[str, Any]]:
    return _render_kubectl(directory) if KUBECTL else _render_pyyaml(directory)


@pytest.fixture(scope="module", params=["base", "overlays/curve"])
def k8s(request: pytest.FixtureRequest) -> dict[tuple[str, str], dict[str, Any]]:
    """The rendered manifests by (kind, name)."""
    return {(d["kind"], d["metadata"]["name"]): d for d in render(K8S / request.param)}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE.read_text()))
    return data


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(interpolate(STACK.read_text()))
    return data


def _env_list(entries: list[str]) -> dict[str, str | None]:
    """Compose `environment` list -> {name: value, or None for a pass-through name}."""
    out: dict[str, str | None] = {}
    for entry in entries:
        name, eq, value = entry.partition("=")
        out[name] = value if eq else None
    return out


def _bytes(quantity: str) -> int:
    """512m (compose), 512M (swarm), 512Mi (k8s) -> bytes (binary units, as Docker reads them)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG])?i?[bB]?", str(quantity))
    assert m, f"not a memory quantity: {quantity!r}"
    return int(float(m.group(1)) * 1024 ** " kmg".index((m.group(2) or " ").lower()))


def _cpus(quantity: str | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    c: dict[str, Any] = containers[0]
    return c


def test_manifests_validate_against_the_kubernetes_schema(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for (kind, name), doc in k8s.items():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert {("Deployment", "coordinator"), ("Service", "coordinator"), ("StatefulSet", "node"),
            ("Service", "node"), ("ConfigMap", "rocknet-run"), ("Namespace", "rocknet")} <= set(k8s)


def test_a_manifest_with_a_typo_fails_the_schema_check(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    bad = _merge(k8s[("StatefulSet", "node")], {"spec": {"replica": 3}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_k8s_devices_are_a_statefulset_with_a_headless_service(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    sts = k8s[("StatefulSet", "node")]
    assert k8s[("Service", "node")]["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == "node"
    # Pod node-k is named node-k: the coordinator's registry reads that as device k.
    env = {e["name"]: e for e in _container(sts)["env"]}
    assert env["ROCKNET_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    from coordinator.engine.registry import device_of_name
    assert [device_of_name(f"{sts['metadata']['name']}-{k}") for k in range(3)] == [0, 1, 2]
    config = k8s[("ConfigMap", "rocknet-run")]["data"]
    assert sts["spec"]["replicas"] == int(config["ROCKNET_NODES"]), \
        "the StatefulSet's replicas and ROCKNET_NODES must be equal"


def test_k8s_agrees_with_compose_on_images_commands_env_limits_probes(
    k8s: dict[tuple[str, str], dict[str, Any]], compose: dict[str, Any],
) -> None:
    services = compose["services"]
    pairs = [(services["coordinator"], _container(k8s[("Deployment", "coordinator")])),
             (services["node00"], _container(k8s[("StatefulSet", "node")]))]
    for service, container in pairs:
        assert container["image"].split(":")[0] == service["image"].split(":")[0]
        assert container["command"] == service["command"]
        limits = container["resources"]["limits"]
        assert _bytes(limits["memory"]) == _bytes(service["mem_limit"])
        assert _cpus(limits["cpu"]) == _cpus(service["cpus"])
        assert container["readinessProbe"]["exec"]["command"] == service["healthcheck"]["test"][1:]
    # Run settings: every variable compose hands the coordinator, with the same default.
    config = k8s[("ConfigMap", "rocknet-run")]["data"]
    for name, value in _env_list(services["coordinator"]["environment"]).items():
        if name.startswith("ROCKNET_"):
            assert name in config, f"{name} is in docker-compose.yml, not in the ConfigMap"
            assert config[name] == (value or ""), name


def test_k8s_ports_are_the_compose_ports(
    k8s: dict[tuple[str, str], dict[str, Any]], compose: dict[str, Any],
) -> None:
    published = {int(p.rsplit(":", 1)[1]) for p in compose["services"]["coordinator"]["ports"]}
    node_port = int(compose["services"]["node00"]["command"][3].rsplit(":", 1)[1])
    service = {p["name"]: p for p in k8s[("Service", "coordinator")]["spec"]["ports"]}
    assert {service["feed"]["port"], service["control"]["port"]} == published == {7101, 7102}
    assert service["nodes"]["port"] == node_port == 7100
    pod_ports = {p["containerPort"] for p in _container(k8s[("Deployment", "coordinator")])["ports"]}
    assert pod_ports == {7100, 7101, 7102}
    assert k8s[("Service", "coordinator")]["spec"]["type"] == "ClusterIP"  # not on the internet


def test_k8s_curve_overlay_mounts_the_keys_where_rocknet_looks() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render(K8S / "overlays" / "curve")}
    coordinator = _container(docs[("Deployment", "coordinator")])
    node = _container(docs[("StatefulSet", "node")])
    for c in (coordinator, node):
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert {"/keys", "/keys/nodes"} <= mounts
        assert {e["name"]: e.get("value") for e in c["env"]}["ROCKNET_CURVE_DIR"] == "/keys"
    assert {e["name"] for e in node["env"]} >= {"ROCKNET_NAME"}, "the patch must not drop env"
    node_volumes = {v["name"]: v for v in
                    docs[("StatefulSet", "node")]["spec"]["template"]["spec"]["volumes"]}
    # The node pods see only the coordinator's public key, never its secret.
    public = node_volumes["curve-coordinator-public"]["secret"]
    assert public["items"] == [{"key": "coordinator.key", "path": "coordinator.key"}]


@pytest.mark.skipif(not KUBECTL, reason="no kubectl with kustomize v4+ here")
def test_the_pyyaml_fallback_renders_what_kubectl_renders() -> None:
    """Where kubectl exists, check the fallback renderer against it (labels aside)."""
    def strip(docs: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        out = {}
        for d in docs:
            d = yaml.safe_load(yaml.safe_dump(d))
            d["metadata"].pop("labels", None)
            out[(d["kind"], d["metadata"]["name"])] = d
        return out

    for overlay in ("base", "overlays/curve"):
        assert strip(_render_pyyaml(K8S / overlay)) == strip(_render_kubectl(K8S / overlay))


def test_swarm_stack_agrees_with_compose(stack: dict[str, Any], compose: dict[str, Any]) -> None:
    assert str(stack["version"]).startswith("3")
    services = compose["services"]
    for ours, theirs in ((stack["services"]["coordinator"], services["coordinator"]),
                         (stack["services"]["node"], services["node00"])):
        assert ours["image"] == theirs["image"] and ours["command"] == theirs["command"]
        limits = ours["deploy"]["resources"]["limits"]
        assert _bytes(limits["memory"]) == _bytes(theirs["mem_limit"])
        assert _cpus(limits["cpus"]) == _cpus(theirs["cpus"])
        assert ours["healthcheck"]["test"] == theirs["healthcheck"]["test"]
        assert "mem_limit" not in ours, "docker stack deploy ignores mem_limit"
    coordinator = stack["services"]["coordinator"]
    assert coordinator["deploy"]["placement"]["constraints"] == ["node.role == manager"]
    assert {int(p["target"]) for p in coordinator["ports"]} == {7101, 7102}  # 7100 stays inside
    ours_env = _env_list(coordinator["environment"])
    for name, value in _env_list(services["coordinator"]["environment"]).items():
        if name.startswith("ROCKNET_"):
            assert ours_env.get(name, "missing") == (value or ""), name
    assert ours_env["ROCKNET_CONTROL_PORT"] == "7102" and ours_env["ROCKNET_FEED_PORT"] == "7101"
    node = stack["services"]["node"]
    assert node["deploy"]["replicas"] == int(ours_env["ROCKNET_NODES"] or 0)
    # Templates expand in environment, not in command (moby #33364).
    assert "ROCKNET_TASK_SLOT={{.Task.Slot}}" in node["environment"]
    assert not any("{{" in part for part in node["command"])
    assert stack["networks"]["testbed"]["driver"] == "overlay"


def test_a_task_slot_names_its_device() -> None:
    from coordinator.engine.registry import device_of_name
    from node.process import default_name

    assert [device_of_name(default_name({"ROCKNET_TASK_SLOT": str(s)})) for s in (1, 2, 20)] \
        == [0, 1, 19]
    assert default_name({"ROCKNET_TASK_SLOT": "3", "ROCKNET_NAME": "edge"}) == "edge"
    for bad in ("0", "x", "-1"):
        with pytest.raises(ValueError, match="ROCKNET_TASK_SLOT"):
            default_name({"ROCKNET_TASK_SLOT": bad})
