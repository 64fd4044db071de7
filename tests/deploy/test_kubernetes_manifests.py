"""deploy/kubernetes checked against the real schemas, not only parsed as YAML.

- core objects with kubernetes-validate's schemas of the pinned Kubernetes versions, strict
  (a field Kubernetes does not have is an error);
- CloudNativePG's Cluster and ScheduledBackup with the openAPIV3Schema of its CRDs, and the
  ServiceMonitors and PodMonitor with prometheus-operator's, both from their Go modules,
  strict as the API server's field validation is;
- Strimzi's Kafka, KafkaNodePool and KafkaTopic with Strimzi's own model classes
  (deploy/kubernetes/validation/StrimziCheck.java), unknown fields refused.

Each validator also refuses a wrong field (one negative test each). The schemas are fetched
by deploy/kubernetes/validation/fetch.sh (make deploy-schemas) into var/deploy-schemas; these
tests skip only when that fetch cannot reach the network and CI is not set.

No cluster runs here: the files are validated, never applied (docs/operations.md).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import jsonschema
import kubernetes_validate
import pytest
import yaml
from fastapi import FastAPI

from services.contracts.topics import Topics
from services.display.options import DisplayOptions
from services.ledger.main import LedgerApp, batches_check
from services.platform.free_ports import free_ports
from services.platform.health import Check, health_router
from services.platform.http_thread import serve_in_thread
from services.platform.kafka_admin import Replication, topic_request
from services.platform.settings import Settings
from tests.fixtures.ledger import eventually

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
FETCH = KUBERNETES_DIR / "validation" / "fetch.sh"
STRIMZI_CHECK = KUBERNETES_DIR / "validation" / "StrimziCheck.java"
SECRETS_TEMPLATE = KUBERNETES_DIR / "secrets.template.yaml"
CACHE = REPO / "var" / "deploy-schemas"
# The oldest and the newest Kubernetes the files are meant for.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
OFFLINE = 75  # fetch.sh's exit status when a download failed

Resource = dict[str, Any]


def _pinned(name: str) -> str:
    """A version pinned in fetch.sh, so the pins live in one place."""
    found = re.search(rf"^{name}=(\S+)$", FETCH.read_text(), re.MULTILINE)
    assert found, f"{name} is not pinned in {FETCH}"
    return found.group(1)


CNPG_DIR = f"cloudnative-pg-{_pinned('CNPG_VERSION')}"
MONITORING_DIR = f"prometheus-operator-{_pinned('PROMETHEUS_OPERATOR_VERSION')}"
STRIMZI_DIR = f"strimzi-{_pinned('STRIMZI_VERSION')}"

# Where each custom kind's CRD is in the cache: its directory and plural (<group>_<plural>.yaml).
CRD_FILES = {
    ("postgresql.cnpg.io", "Cluster"): (CNPG_DIR, "clusters"),
    ("postgresql.cnpg.io", "ScheduledBackup"): (CNPG_DIR, "scheduledbackups"),
    ("monitoring.coreos.com", "ServiceMonitor"): (MONITORING_DIR, "servicemonitors"),
    ("monitoring.coreos.com", "PodMonitor"): (MONITORING_DIR, "podmonitors"),
}
STRIMZI_GROUP = "kafka.strimzi.io"


def _documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kustomized() -> list[Resource]:
    """The resources `kubectl apply -k deploy/kubernetes` applies: every file the
    kustomization lists, with its namespace set (it uses no patches or generators)."""
    kustomization = yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())
    resources = []
    for name in kustomization["resources"]:
        for doc in _documents(KUBERNETES_DIR / name):
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kustomization["namespace"]
            resources.append(doc)
    return resources


RESOURCES = _kustomized()
SECRETS = _documents(SECRETS_TEMPLATE)
EVERYTHING = RESOURCES + SECRETS


def _group(resource: Resource) -> str:
    api_version: str = resource["apiVersion"]
    return api_version.rpartition("/")[0]


def _is_custom(resource: Resource) -> bool:
    return _group(resource) == STRIMZI_GROUP or (_group(resource), resource["kind"]) in CRD_FILES


def _named(kind: str, name: str, resources: list[Resource] = RESOURCES) -> Resource:
    [found] = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def _selecting(kind: str, labels: dict[str, str]) -> list[Resource]:
    """The resources of `kind` whose selector picks what carries `labels`."""
    found = []
    for resource in (r for r in RESOURCES if r["kind"] == kind):
        selector = resource["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        if selector.items() <= labels.items():
            found.append(resource)
    return found


def _id(resource: Resource) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


@pytest.fixture(scope="module")
def schemas() -> Path:
    """The cache of fetched schemas, fetched now if it is not complete."""
    wanted = (CNPG_DIR, MONITORING_DIR, STRIMZI_DIR)
    if not all((CACHE / name / ".fetched").exists() for name in wanted):
        result = subprocess.run([str(FETCH), str(CACHE)], capture_output=True, text=True, timeout=600)
        if result.returncode == OFFLINE and not os.environ.get("CI"):
            reason = result.stderr.strip()[-300:]
            pytest.skip(f"offline, and not in CI: could not fetch the schemas ({reason})")
        assert result.returncode == 0, f"{FETCH} failed:\n{result.stderr}"
    return CACHE


# --- the validators -------------------------------------------------------------------


def core_problems(resource: Resource, version: str) -> list[str]:
    """Raises SchemaNotFoundError for a kind Kubernetes does not have: a custom resource
    that no validator here knows fails the test instead of passing unchecked."""
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        return [f"{_id(resource)} against Kubernetes {version}: {where}: {error.message}"]
    return []


def _strict(schema: Any) -> Any:
    """The schema as the API server's strict field validation applies it: an object with
    declared properties takes no others, unless it says x-kubernetes-preserve-unknown-fields."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def _served_versions(crd_file: Path) -> dict[str, jsonschema.Draft4Validator]:
    """Each version the CRD serves, with a validator of its (strict) schema."""
    crd = yaml.load(crd_file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {
        version["name"]: jsonschema.Draft4Validator(_strict(version["schema"]["openAPIV3Schema"]))
        for version in crd["spec"]["versions"]
        if version.get("served")
    }


def crd_problems(resource: Resource, cache: Path) -> list[str]:
    directory, plural = CRD_FILES[(_group(resource), resource["kind"])]
    served = _served_versions(cache / directory / f"{_group(resource)}_{plural}.yaml")
    version = resource["apiVersion"].rpartition("/")[2]
    if version not in served:
        return [f"{_id(resource)}: {resource['apiVersion']} is not served (only {sorted(served)})"]
    validator = served[version]
    return [
        f"{_id(resource)}: {'.'.join(str(part) for part in error.path)}: {error.message}"
        for error in validator.iter_errors(resource)
    ]


def strimzi_problems(resources: list[Resource], cache: Path) -> list[str]:
    """Every resource read by Strimzi's model classes in one JVM; the lines of those refused."""
    java = shutil.which("java")
    assert java, "java is needed to read Strimzi resources with Strimzi's classes (.ci/run installs it)"
    result = subprocess.run(
        [java, "-cp", str(cache / STRIMZI_DIR / "*"), str(STRIMZI_CHECK)],
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == len(resources), f"StrimziCheck answered {lines!r}, stderr:\n{result.stderr}"
    problems = [line for line in lines if not line.startswith("ok ")]
    assert (result.returncode != 0) == bool(problems), result.stderr
    return problems


def _with(resource: Resource, path: str, value: Any) -> Resource:
    """A copy with `value` set at the dotted `path` (list indexes as numbers)."""
    changed = copy.deepcopy(resource)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return changed


# --- validated against the schemas ----------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_are_valid_kubernetes(version: str) -> None:
    core = [r for r in EVERYTHING if not _is_custom(r)]
    assert {r["kind"] for r in core} >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    assert [problem for r in core for problem in core_problems(r, version)] == []


def test_kubernetes_validate_refuses_a_wrong_field() -> None:
    ledger = _named("Deployment", "charity-ledger")
    misspelt = _with(ledger, "spec.template.spec.containers.0.livenessProbe.httpGett", {"path": "/healthz"})
    [problem] = core_problems(misspelt, KUBERNETES_VERSIONS[-1])
    assert "httpGett" in problem
    wrong_type = _with(ledger, "spec.replicas", "two")
    assert core_problems(wrong_type, KUBERNETES_VERSIONS[-1]) != []


def test_cloudnativepg_and_monitors_match_their_crds(schemas: Path) -> None:
    custom = [r for r in RESOURCES if (_group(r), r["kind"]) in CRD_FILES]
    kinds = sorted({r["kind"] for r in custom})
    assert kinds == ["Cluster", "PodMonitor", "ScheduledBackup", "ServiceMonitor"]
    assert [problem for r in custom for problem in crd_problems(r, schemas)] == []


def test_a_crd_schema_refuses_a_wrong_field(schemas: Path) -> None:
    cluster = _named("Cluster", "charity-db")
    misspelt = crd_problems(_with(cluster, "spec.instance", 3), schemas)
    assert len(misspelt) == 1 and "'instance' was unexpected" in misspelt[0]
    assert crd_problems(_with(cluster, "spec.instances", "three"), schemas) != []
    assert crd_problems(_with(cluster, "apiVersion", "postgresql.cnpg.io/v2"), schemas) != []
    monitor = _named("ServiceMonitor", "charity-api")
    [problem] = crd_problems(_with(monitor, "spec.endpoints.0.paths", "/metrics"), schemas)
    assert "'paths' was unexpected" in problem


def test_strimzi_resources_are_read_by_strimzis_own_classes(schemas: Path) -> None:
    strimzi = [r for r in RESOURCES if _group(r) == STRIMZI_GROUP]
    assert {r["kind"] for r in strimzi} == {"Kafka", "KafkaNodePool", "KafkaTopic"}
    assert strimzi_problems(strimzi, schemas) == []


def test_strimzis_classes_refuse_a_wrong_field(schemas: Path) -> None:
    pool = _named("KafkaNodePool", "combined")
    topic = _named("KafkaTopic", "charity.donations")
    kafka = _named("Kafka", "charity-kafka")
    problems = strimzi_problems(
        [
            _with(pool, "spec.role", ["broker"]),
            _with(topic, "spec.replicas", "three"),
            _with(kafka, "spec.kafka.listeners.0.typ", "internal"),
            _with(topic, "apiVersion", "kafka.strimzi.io/v2"),
        ],
        schemas,
    )
    assert len(problems) == 4
    assert 'Unrecognized field "role"' in problems[0]
    assert "KafkaTopicSpec" in problems[1]
    assert 'Unrecognized field "typ"' in problems[2]
    assert "is not served" in problems[3]


# --- what the files say, against the code ----------------------------------------------


def _setting_variables() -> set[str]:
    # CHARITY_VAR_DIR is read once, at import (settings.VAR_DIR): the default paths hang on it.
    names = {"CHARITY_VAR_DIR"}
    for model, prefix in ((Settings, "CHARITY_"), (DisplayOptions, "CHARITY_DISPLAY_")):
        for name, field in model.model_fields.items():
            alias = field.validation_alias
            names.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


def _containers() -> Iterator[tuple[Resource, Resource]]:
    for deployment in (r for r in RESOURCES if r["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield deployment, container


def test_every_variable_the_deployment_sets_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _named("ConfigMap", "charity-settings")["data"]
    env_names = {var["name"] for _, container in _containers() for var in container.get("env", [])}
    assert sorted((set(settings) | env_names) - _setting_variables()) == []
    for name in os.environ:
        if name.startswith("CHARITY_"):
            monkeypatch.delenv(name)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    # The values are valid too: both settings objects build from them.
    read = Settings()
    DisplayOptions()
    assert (read.topic_replication_factor, read.topic_min_insync_replicas) == (3, 2)
    assert read.ledger_http_host == "0.0.0.0" and read.api_host == "0.0.0.0"


def test_every_topic_of_the_catalogue_has_its_kafka_topic() -> None:
    settings = _named("ConfigMap", "charity-settings")["data"]
    replication = Replication(
        int(settings["CHARITY_TOPIC_REPLICATION_FACTOR"]), int(settings["CHARITY_TOPIC_MIN_INSYNC_REPLICAS"])
    )
    assert (replication.factor, replication.min_insync) == (3, 2)
    topics = {r["metadata"]["name"]: r for r in RESOURCES if r["kind"] == "KafkaTopic"}
    specs = Topics(settings["CHARITY_TOPIC_PREFIX"]).specs()
    assert sorted(topics) == sorted(spec.name for spec in specs)
    for spec in specs:
        wanted = topic_request(spec, replication)
        topic = topics[spec.name]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "charity-kafka"
        assert (topic["spec"]["partitions"], topic["spec"]["replicas"]) == (
            wanted["num_partitions"],
            wanted["replication_factor"],
        ), spec.name
        config = topic["spec"]["config"]
        assert {key: config.get(key) for key in wanted["configs"]} == wanted["configs"], spec.name
        assert spec.compacted or "retention.ms" in config, f"{spec.name}: a retention of its own"
    retention = {name: int(topic["spec"]["config"].get("retention.ms", 0)) for name, topic in topics.items()}
    inputs = max(retention[name] for name in Topics().inputs)
    assert retention["charity.dlq"] > inputs
    assert retention["charity.ledger.journal"] == retention["charity.ledger.checkpoints"] == -1


def test_the_kafka_cluster_replicates_as_the_topics_ask() -> None:
    kafka = _named("Kafka", "charity-kafka")["spec"]["kafka"]
    assert kafka["config"]["default.replication.factor"] == 3
    assert kafka["config"]["min.insync.replicas"] == 2
    assert kafka["config"]["unclean.leader.election.enable"] is False
    pool = _named("KafkaNodePool", "combined")["spec"]
    assert pool["replicas"] == 3 and sorted(pool["roles"]) == ["broker", "controller"]
    bootstrap = _named("ConfigMap", "charity-settings")["data"]["CHARITY_KAFKA_BOOTSTRAP"]
    assert bootstrap == f"charity-kafka-kafka-bootstrap:{kafka['listeners'][0]['port']}"
    assert _named("Cluster", "charity-db")["spec"]["instances"] == 3


def test_each_part_has_probes_resources_a_budget_a_service_and_a_monitor() -> None:
    deployments = {r["metadata"]["name"]: r for r in RESOURCES if r["kind"] == "Deployment"}
    assert sorted(deployments) == ["charity-api", "charity-display", "charity-ledger"]
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pod["enableServiceLinks"] is False, f"{name}: Service links would set CHARITY_*_PORT"
        assert pod["securityContext"]["runAsNonRoot"] is True
        [main] = pod["containers"]
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        readiness = main["readinessProbe"]
        asked = readiness["httpGet"]["path"] if "httpGet" in readiness else readiness["exec"]["command"][-1]
        assert "/readyz" in asked
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert (
                set(container["resources"]["requests"])
                == set(container["resources"]["limits"])
                == {
                    "cpu",
                    "memory",
                }
            )
        [budget] = _selecting("PodDisruptionBudget", labels)
        [service] = _selecting("Service", labels)
        port = service["spec"]["ports"][0]["name"]
        [monitor] = _selecting("ServiceMonitor", service["metadata"]["labels"])
        assert monitor["spec"]["endpoints"] == [{"port": port, "path": "/metrics", "interval": "15s"}]
        assert budget["spec"]["maxUnavailable"] == 1


def test_the_ledger_is_one_active_and_one_standby_and_the_rest_scale() -> None:
    ledger = _named("Deployment", "charity-ledger")["spec"]
    assert ledger["replicas"] == 2
    assert ledger["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert "replicas" not in _named("Deployment", "charity-api")["spec"]
    for name, least in (("charity-api", 2), ("charity-display", 2)):
        autoscaler = _named("HorizontalPodAutoscaler", name)["spec"]
        assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert autoscaler["minReplicas"] >= least and autoscaler["maxReplicas"] > autoscaler["minReplicas"]
    # Prometheus scrapes the standby too: its Service lists pods that are not ready.
    assert _named("Service", "charity-ledger")["spec"]["publishNotReadyAddresses"] is True


def test_the_secrets_are_templates_and_every_reference_names_one() -> None:
    kustomization = yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())
    assert SECRETS_TEMPLATE.name not in kustomization["resources"], "a re-apply would overwrite real keys"
    keys = {s["metadata"]["name"]: s["stringData"] for s in SECRETS}
    assert all(value in ("", "charity") for data in keys.values() for value in data.values())
    referenced: set[tuple[str, str | None]] = set()
    for deployment, container in _containers():
        for var in container.get("env", []):
            ref = var["valueFrom"]["secretKeyRef"]
            referenced.add((ref["name"], ref["key"]))
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume:
                referenced.add((volume["secret"]["secretName"], None))
    cluster = _named("Cluster", "charity-db")["spec"]
    referenced.add((cluster["bootstrap"]["initdb"]["secret"]["name"], "password"))
    for credential in cluster["backup"]["barmanObjectStore"]["s3Credentials"].values():
        referenced.add((credential["name"], credential["key"]))
    for name, key in referenced:
        assert name in keys, f"no Secret {name} in {SECRETS_TEMPLATE.name}"
        assert key is None or key in keys[name], f"no key {key} in Secret {name}"
    assert {name for name, _ in referenced} == set(keys)


def test_the_paths_the_settings_name_are_mounted() -> None:
    settings = _named("ConfigMap", "charity-settings")["data"]
    mounts = {
        (deployment["metadata"]["name"], mount["mountPath"])
        for deployment, container in _containers()
        for mount in container.get("volumeMounts", [])
    }
    for deployment, path in (
        ("charity-ledger", settings["CHARITY_SIGNING_KEY"]),
        ("charity-api", settings["CHARITY_WEB_SECRET_PATH"]),
        ("charity-api", settings["CHARITY_WECHATPAY_API_V3_KEY_PATH"]),
        ("charity-api", settings["CHARITY_WECHATPAY_MERCHANT_KEY_PATH"]),
        ("charity-api", settings["CHARITY_WECHATPAY_PLATFORM_KEYS_DIR"] + "/x.pem"),
        ("charity-api", settings["CHARITY_DOCUMENTS_DIR"] + "/x"),
        ("charity-display", settings["CHARITY_VENUES_FILE"]),
        ("charity-display", settings["CHARITY_DISPLAY_DECISIONS_FILE"]),
    ):
        assert any(d == deployment and path.startswith(m + "/") for d, m in mounts), (deployment, path)


# --- the ledger's readiness probe, run against a ledger's real health routes ------------


def _ok() -> None:
    pass


def _database_down() -> None:
    raise ConnectionError("connection refused")


def _writer(healthy: bool) -> SimpleNamespace:
    """What batches_check reads of the writing ledger."""
    return SimpleNamespace(consumer=SimpleNamespace(healthy=healthy))


def _run_ledger_readiness_probe(port: int) -> bool:
    """The manifest's exec probe, run with this Python against a ledger's health port."""
    [ledger] = _named("Deployment", "charity-ledger")["spec"]["template"]["spec"]["containers"]
    command = [sys.executable, *ledger["readinessProbe"]["exec"]["command"][1:]]
    env = {**os.environ, "CHARITY_LEDGER_HTTP_PORT": str(port)}
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0


@pytest.mark.parametrize(
    ("database", "ledger", "ready"),
    [
        pytest.param(_ok, None, True, id="a standby that reaches everything"),
        pytest.param(_database_down, None, False, id="a standby without its database"),
        pytest.param(_ok, _writer(healthy=True), True, id="the writer"),
        pytest.param(_ok, _writer(healthy=False), False, id="a failing writer"),
    ],
)
def test_the_ledgers_readiness_probe_counts_a_standby_as_ready(
    database: Check, ledger: SimpleNamespace | None, ready: bool
) -> None:
    [port] = free_ports(1)
    batches = batches_check(lambda: cast(LedgerApp | None, ledger))
    http = FastAPI()
    http.include_router(health_router({"database": database, "kafka": _ok, "batches": batches}))
    server = serve_in_thread(http, "127.0.0.1", port)
    try:
        eventually(lambda: server.started, timeout=10, what="the health routes to serve")
        assert _run_ledger_readiness_probe(port) is ready
    finally:
        server.should_exit = True


def test_the_ledgers_readiness_probe_fails_when_nothing_answers() -> None:
    [port] = free_ports(1)
    assert _run_ledger_readiness_probe(port) is False
