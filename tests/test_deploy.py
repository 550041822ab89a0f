"""The deployment files: deploy/kubernetes, deploy/systemd, the Dockerfile, deploy/grafana and
deploy/prometheus (docs/scale.md says how each is used).

Each file is checked by the tool made for it where that tool is here (kubernetes-validate
always, as a dev dependency; ``systemd-analyze``, ``promtool`` and ``kubectl`` when installed;
a test that needs one skips, naming it), and against the code it deploys: the daemon's
options parse with chantd's own parser, the probe paths are the daemon's routes, the metric
names are the ones the daemon exports (docs/daemon.md's table, held against chantd/metrics.py),
the ports, names, labels and paths agree across the files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from .support import ROOT, DaemonProc, free_port, isolated_git_env

DEPLOY = Path(ROOT) / "deploy"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "chant-dashboard.json"
DOCKERFILE = Path(ROOT) / "Dockerfile"

#: the Kubernetes version the manifests are validated against (kubernetes-validate ships its
#: schemas): the oldest release the manifests promise to work on
K8S_VERSION = "1.30.0"
#: the secret the daemon and the workers read the API token from
TOKEN_SECRET = ("chant-token", "token")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed here (.ci/run installs promtool; systemd-analyze and kubectl "
                    "come with systemd and kubectl)")
    return path


# --- what the daemon is: its options, routes and metrics -------------------------------------


def chantd_parser() -> argparse.ArgumentParser:
    """chantd's own command line (chantd.server.main builds the same)."""
    from chantd.options import add_start_options

    parser = argparse.ArgumentParser(prog="chantd", exit_on_error=False)
    parser.add_argument("-C", dest="root")
    add_start_options(parser)
    return parser


def parse_chantd(args: list[str]) -> argparse.Namespace:
    try:
        return chantd_parser().parse_args(args)
    except (argparse.ArgumentError, SystemExit) as exc:  # pragma: no cover - the failure itself
        pytest.fail(f"chantd does not take {args}: {exc}")


def daemon_routes() -> dict[str, set[str]]:
    """The paths of the API app and of the metrics app."""
    from chantd.http import build_app, build_metrics_app

    return {
        "api": {route.path for route in build_app(None, token="t").routes},
        "metrics": {route.path for route in build_metrics_app(None, None).routes},
    }


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """docs/daemon.md's metrics table: name -> (type, label names)."""
    text = (Path(ROOT) / "docs" / "daemon.md").read_text(encoding="utf-8")
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        m = re.match(r"\| `(chant_\w+)` \| ([^|]+) \|([^|]*)\|", line)
        if m:
            labels = set(re.findall(r"`(\w+)`", m.group(3).split("=", 1)[0]))
            out[m.group(1)] = (m.group(2).strip().split()[0], labels)
    return out


def exported_series() -> set[str]:
    """Every series name the daemon exposes (a histogram as its _bucket, _sum and _count)."""
    names = set()
    for name, (kind, _labels) in documented_metrics().items():
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


#: labels Prometheus adds, and a histogram's bucket bound
SCRAPE_LABELS = {"job", "instance", "le", "namespace", "pod"}


def test_the_documented_metrics_are_the_ones_chantd_registers():
    source = (Path(ROOT) / "chantd" / "metrics.py").read_text(encoding="utf-8")
    registered = set(re.findall(r'"(chant_\w+)"', source))
    documented = {name.removesuffix("_total") for name in documented_metrics()}
    assert documented == registered
    for name, (kind, _labels) in documented_metrics().items():
        assert name.endswith("_total") == (kind == "counter"), name


# --- PromQL, just enough to name what an expression reads ------------------------------------

_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = _GROUPING.sub("", bare)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)(\s*\()?", bare):
        if m.group(2) is None and m.group(1).lower() not in _KEYWORDS:
            names.add(m.group(1))
    return names


def promql_labels(expr: str) -> set[str]:
    """The label names an expression groups by or matches on."""
    labels = set()
    for m in _GROUPING.finditer(expr):
        labels |= {name.strip() for name in m.group(2).split(",") if name.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    return labels


def test_promql_helpers():
    expr = ('histogram_quantile(0.99, sum by (le, cmd) (rate(chant_request_duration_seconds_bucket'
            '{job=~"$job"}[$__rate_interval]))) and on (job) up{job="x"} == 0')
    assert promql_metrics(expr) == {"chant_request_duration_seconds_bucket", "up"}
    assert promql_labels(expr) == {"le", "cmd", "job"}


def check_exprs(exprs: list[str]) -> None:
    known = exported_series() | {"up"}
    labels = set().union(*(labels for _kind, labels in documented_metrics().values())) | SCRAPE_LABELS
    for expr in exprs:
        assert promql_metrics(expr), expr
        assert promql_metrics(expr) <= known, f"{expr}: reads {promql_metrics(expr) - known}, not exported"
        assert promql_labels(expr) <= labels, f"{expr}: labels {promql_labels(expr) - labels} do not exist"


def promtool_parses(exprs: list[str], tmp_path: Path) -> None:
    """Each expression parses (as a recording rule, for promtool check rules)."""
    promtool = need("promtool")
    rules = [{"record": f"chant:check:{i}", "expr": expr.replace("$__rate_interval", "5m")}
             for i, expr in enumerate(exprs)]
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}), encoding="utf-8")
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


# --- Kubernetes -------------------------------------------------------------------------------


def k8s_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def k8s_manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def resources() -> dict[tuple[str, str], dict]:
    """(kind, name) -> resource, over every manifest."""
    out = {}
    for path in k8s_manifests():
        for doc in k8s_docs(path):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def pod_spec(kind_name: tuple[str, str]) -> dict:
    return resources()[kind_name]["spec"]["template"]["spec"]


DAEMON = ("Deployment", "chant-daemon")
WORKER = ("Deployment", "chant-worker")
SERVICE = ("Service", "chant-daemon")


@pytest.mark.parametrize("path", k8s_manifests(), ids=lambda p: p.name)
def test_manifest_validates(path):
    import kubernetes_validate

    docs = k8s_docs(path)
    assert docs
    for doc in docs:
        assert "namespace" not in doc["metadata"], "namespace-agnostic: kustomize or -n sets it"
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_kustomization_lists_every_manifest_but_the_secret():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    # the Secret is made by hand: applied with the rest, its placeholder would replace the token
    assert listed == {p.name for p in k8s_manifests()} - {"secret.yaml"}
    assert "namespace" not in kustomization
    assert {image["name"] for image in kustomization["images"]} == {"chant"}


def test_kustomize_renders_valid_resources():
    kubectl = need("kubectl")
    import kubernetes_validate

    run = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    docs = [doc for doc in yaml.safe_load_all(run.stdout) if doc]
    assert sorted(doc["kind"] for doc in docs) == [
        "Deployment", "Deployment", "PersistentVolumeClaim", "PodDisruptionBudget", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            for container in spec["containers"] + spec.get("initContainers", []):
                assert container["image"] == "chant:0.1.0"


def test_the_secret_is_a_placeholder_with_a_recipe():
    text = (K8S / "secret.yaml").read_text(encoding="utf-8")
    secret = resources()[("Secret", TOKEN_SECRET[0])]
    assert TOKEN_SECRET[1] in secret["stringData"]
    assert "REPLACE-ME" in secret["stringData"][TOKEN_SECRET[1]]
    assert f"kubectl create secret generic {TOKEN_SECRET[0]} --from-literal={TOKEN_SECRET[1]}=" in text
    assert "openssl rand" in text


def test_labels_and_selectors_match():
    res = resources()
    for kind_name in (DAEMON, WORKER):
        deployment = res[kind_name]
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), kind_name
    service_selector = res[SERVICE]["spec"]["selector"]
    daemon_labels = res[DAEMON]["spec"]["template"]["metadata"]["labels"]
    worker_labels = res[WORKER]["spec"]["template"]["metadata"]["labels"]
    assert service_selector.items() <= daemon_labels.items()
    assert not service_selector.items() <= worker_labels.items(), "the Service must not pick the workers"
    pdb_selector = res[("PodDisruptionBudget", "chant-worker")]["spec"]["selector"]["matchLabels"]
    assert pdb_selector.items() <= worker_labels.items()
    assert not pdb_selector.items() <= daemon_labels.items(), "no budget for the one daemon: it would block drains"


def test_one_daemon_per_repository():
    daemon = resources()[DAEMON]
    assert daemon["spec"]["replicas"] == 1
    assert daemon["spec"]["strategy"]["type"] == "Recreate"  # never two at once on the instance lock


def container(kind_name, name=None) -> dict:
    containers = pod_spec(kind_name)["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def ports(c: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c.get("ports", [])}


def test_the_daemon_arguments_are_chantds_and_match_the_ports():
    c = container(DAEMON)
    args = parse_chantd(c["args"])
    assert ports(c) == {"api": args.api_port, "metrics": args.metrics_port}
    assert args.api_host == "0.0.0.0"
    # beyond loopback the daemon refuses to start without a token
    assert env_from_secret(c, "CHANT_API_TOKEN") == TOKEN_SECRET
    assert args.poll, "a shared volume written from other nodes: inotify does not see those writes"


def test_the_service_ports_are_the_containers():
    service = resources()[SERVICE]
    by_name = ports(container(DAEMON))
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        assert (by_name[target] if isinstance(target, str) else target) == port["port"] == by_name[port["name"]]
    assert {p["name"] for p in service["spec"]["ports"]} == {"api", "metrics"}


def env_value(c: dict, name: str):
    return next((e.get("value") for e in c.get("env", []) if e["name"] == name), None)


def env_from_secret(c: dict, name: str):
    entry = next((e for e in c.get("env", []) if e["name"] == name), None)
    ref = (entry or {}).get("valueFrom", {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


def test_the_workers_reach_the_daemon_through_the_service():
    worker = container(WORKER)
    url = env_value(worker, "CHANT_DAEMON")
    m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url or "")
    assert m, url
    service = resources()[SERVICE]
    assert m.group(1) == service["metadata"]["name"]
    api = next(p for p in service["spec"]["ports"] if p["name"] == "api")
    assert int(m.group(2)) == api["port"]
    assert env_from_secret(worker, "CHANT_API_TOKEN") == env_from_secret(container(DAEMON), "CHANT_API_TOKEN")
    assert worker["command"][:2] == ["tini", "--"] and worker["command"][-2:] == ["agent", "worker"]


def test_the_probes_are_the_daemons_routes():
    c = container(DAEMON)
    routes = daemon_routes()
    port_app = {port: app for app, port in (("api", "api"), ("metrics", "metrics"))}
    probes = {kind: c[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/livez"
    assert probes["readinessProbe"]["path"] == probes["startupProbe"]["path"] == "/readyz"
    for kind, probe in probes.items():
        assert probe["port"] in ports(c), kind
        assert probe["path"] in routes[port_app[probe["port"]]], f"{kind}: {probe['path']} is not served there"
    # the first load of a big repository takes minutes: the startup probe waits for it
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_prometheus_scrapes_the_metrics_port():
    template = resources()[DAEMON]["spec"]["template"]
    notes = template["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) == ports(container(DAEMON))["metrics"]
    assert notes["prometheus.io/path"] in daemon_routes()["metrics"]
    worker_notes = resources()[WORKER]["spec"]["template"]["metadata"].get("annotations", {})
    assert worker_notes.get("prometheus.io/scrape") != "true"  # workers serve no metrics


def dockerfile_uid() -> int:
    users = [line.split(None, 1)[1] for line in dockerfile_instructions() if line.startswith("USER ")]
    return int(users[-1].split(":")[0])


@pytest.mark.parametrize("kind_name", [DAEMON, WORKER], ids=lambda k: k[1])
def test_the_pods_are_locked_down(kind_name):
    spec = pod_spec(kind_name)
    assert spec["automountServiceAccountToken"] is False
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == dockerfile_uid() != 0
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), c["name"]
        assert {"cpu", "memory"} <= c["resources"]["limits"].keys(), c["name"]
        volumes = {v["name"] for v in spec["volumes"]}
        assert {m["name"] for m in c["volumeMounts"]} <= volumes, c["name"]
        # a read-only root: whatever writes has a volume
        assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, c["name"]


def repository_mount(kind_name) -> str:
    spec = pod_spec(kind_name)
    claims = {v["name"] for v in spec["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == "chant-repository"}
    (mount,) = [m["mountPath"] for m in spec["containers"][0]["volumeMounts"] if m["name"] in claims]
    return mount


def test_the_daemon_and_the_workers_share_the_repository():
    pvc = resources()[("PersistentVolumeClaim", "chant-repository")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # workers on other nodes mount it too
    daemon_root = parse_chantd(container(DAEMON)["args"]).root
    worker = container(WORKER)
    # the same path in both: the daemon's answers name its paths (CHANT_SPEC_PATH)
    assert repository_mount(DAEMON) == repository_mount(WORKER)
    assert daemon_root.startswith(repository_mount(DAEMON) + "/")
    assert worker["workingDir"] == daemon_root
    assert worker["command"][worker["command"].index("-C") + 1] == daemon_root
    init = pod_spec(DAEMON)["initContainers"][0]
    assert f"repo={daemon_root}\n" in init["command"][-1]


def test_the_workers_have_time_to_stop():
    grace = pod_spec(WORKER)["terminationGracePeriodSeconds"]
    unit = unit_file("chant-worker@.service")
    assert grace == systemd_seconds(unit["Service"]["TimeoutStopSec"][-1]) >= 60
    assert pod_spec(DAEMON)["terminationGracePeriodSeconds"] >= 30


def run_init_script(repo: Path, env: dict) -> subprocess.CompletedProcess:
    script = pod_spec(DAEMON)["initContainers"][0]["command"]
    assert script[:2] == ["sh", "-ec"]
    body = script[2].replace("repo=/data/repo", f"repo={shlex.quote(str(repo))}")
    return subprocess.run(["sh", "-ec", body], env=env, capture_output=True, text=True, timeout=120)


def script_env(tmp_path: Path, **extra) -> dict:
    env = isolated_git_env(tmp_path / "home")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def test_the_init_container_makes_a_repository_once(tmp_path):
    repo = tmp_path / "data" / "repo"
    (tmp_path / "data").mkdir()
    run = run_init_script(repo, script_env(tmp_path, CHANT_REPO_URL=""))
    assert run.returncode == 0, run.stderr
    assert (repo / ".git").is_dir() and (repo / ".chant" / "config.md").is_file()
    (repo / ".chant" / "config.md").write_text("---\nproject: kept\n---\n", encoding="utf-8")
    run = run_init_script(repo, script_env(tmp_path, CHANT_REPO_URL=""))
    assert run.returncode == 0, run.stderr
    assert "kept" in (repo / ".chant" / "config.md").read_text(encoding="utf-8")  # left alone


def test_the_init_container_clones_chant_repo_url(tmp_path):
    from .support import Git

    env = script_env(tmp_path)
    origin = Git.init(tmp_path / "origin", env)
    assert subprocess.run([sys.executable, "-m", "chant_cli", "init", "--direct"], cwd=origin.path, env=env,
                          capture_output=True).returncode == 0
    origin.commit("chant")
    repo = tmp_path / "data" / "repo"
    (tmp_path / "data").mkdir()
    run = run_init_script(repo, script_env(tmp_path, CHANT_REPO_URL=str(origin.path)))
    assert run.returncode == 0, run.stderr
    assert (repo / ".chant" / "config.md").is_file()
    assert subprocess.run(["git", "-C", str(repo), "log", "--oneline"], env=env, capture_output=True,
                          text=True).stdout.strip()


def http_get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_daemon_runs_with_the_manifests_arguments(tmp_path):
    """The daemon container's arguments, on free ports and a socket of our own, and the
    token from the environment as the Secret gives it: it starts, the probes answer, the
    metrics are there, and the API wants the token."""
    repo = tmp_path / "data" / "repo"
    (tmp_path / "data").mkdir()
    assert run_init_script(repo, script_env(tmp_path, CHANT_REPO_URL="")).returncode == 0
    args = list(container(DAEMON)["args"])
    api, metrics = free_port(), free_port()
    swap = {"-C": None, "--api-port": str(api), "--metrics-port": str(metrics),
            "--socket": str(tmp_path / "run" / "daemon.sock")}
    (tmp_path / "run").mkdir(mode=0o700)
    extra, i = [], 0
    while i < len(args):
        if args[i] in swap:
            if swap[args[i]] is not None:
                extra += [args[i], swap[args[i]]]
            i += 2
        else:
            extra.append(args[i])
            i += 1
    token = "t" * 64
    daemon = DaemonProc(str(repo), api=None, metrics=None, extra=extra, env={"CHANT_API_TOKEN": token})
    try:
        base = f"http://127.0.0.1:{api}"
        assert http_get(base + "/livez")[0] == 200
        assert http_get(base + "/readyz")[0] == 200
        assert http_get(f"http://127.0.0.1:{metrics}/livez")[0] == 200
        status, body = http_get(f"http://127.0.0.1:{metrics}/metrics")
        assert status == 200 and "chant_build_info" in body
        assert http_get(base + "/api/hello")[0] == 401
        assert http_get(base + "/api/hello", token)[0] == 200
    finally:
        daemon.stop()


# --- systemd ----------------------------------------------------------------------------------


def unit_file(name: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (a key may repeat), as systemd reads it (no line continuations here)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{name}: keep each setting on one line"
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert section is not None, line
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def systemd_seconds(value: str) -> int:
    m = re.fullmatch(r"(\d+)(s|min)?", value)
    assert m, value
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


UNITS = ["chant.service", "chant-worker@.service"]


def test_systemd_verify(tmp_path):
    analyze = need("systemd-analyze")
    # verify wants the binaries to exist: point them at this checkout's
    bindir = os.path.dirname(sys.executable)
    for tool in ("chant", "chantd"):
        if not os.access(os.path.join(bindir, tool), os.X_OK):
            pytest.skip(f"no {tool} beside {sys.executable} (make install)")
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8")
        text = text.replace("ExecStart=/usr/bin/chantd ", f"ExecStart={bindir}/chantd ")
        text = text.replace("ExecStart=/usr/bin/chant ", f"ExecStart={bindir}/chant ")
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "chant-worker@1.service").symlink_to("chant-worker@.service")
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{tmp_path}:", SYSTEMD_LOG_LEVEL="notice")
    run = subprocess.run([analyze, "verify", str(tmp_path / "chant.service"), str(tmp_path / "chant-worker@1.service")],
                         env=env, capture_output=True, text=True, timeout=120)
    # verify exits 0 on an unknown key or a bad value, and says so: any word about our units fails
    about_ours = [line for line in (run.stdout + run.stderr).splitlines() if "chant" in line]
    assert run.returncode == 0 and not about_ours, run.stdout + run.stderr


@pytest.mark.parametrize("name", UNITS)
def test_the_units_are_hardened(name):
    service = unit_file(name)["Service"]

    def one(key):
        assert key in service, f"{name}: {key} missing"
        return service[key][-1]

    assert one("User") not in ("root", "0") and "DynamicUser" not in service
    assert one("Group") == one("User")
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("PrivateTmp") == "yes"
    assert one("ProtectHome") in ("yes", "read-only")
    assert one("CapabilityBoundingSet") == ""
    families = one("RestrictAddressFamilies").split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    # ProtectSystem=strict: the repository is the one place it writes
    writable = [p.lstrip("-") for value in service["ReadWritePaths"] for p in value.split()]
    assert one("WorkingDirectory") in writable
    for key in ("PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                "RestrictSUIDSGID", "LockPersonality"):
        assert one(key) == "yes", f"{name}: {key}"


def exec_start(name: str) -> list[str]:
    return shlex.split(unit_file(name)["Service"]["ExecStart"][-1])


def test_the_daemon_unit():
    unit = unit_file("chant.service")
    service = unit["Service"]
    assert service["Type"] == ["notify"]  # chantd sends READY=1 once loaded
    argv = exec_start("chant.service")
    assert argv[0].endswith("/chantd")
    args = parse_chantd(argv[1:])
    assert args.root == service["WorkingDirectory"][-1]
    # READY=1 comes after the first load, which takes minutes on a big repository
    assert systemd_seconds(service["TimeoutStartSec"][-1]) >= 300
    assert service["Restart"] == ["always"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_worker_unit():
    unit = unit_file("chant-worker@.service")
    service = unit["Service"]
    daemon = unit_file("chant.service")["Service"]
    assert "chant.service" in " ".join(unit["Unit"]["After"]).split()
    assert "chant.service" in " ".join(unit["Unit"]["Wants"]).split()
    # the worker alone gets SIGTERM and stops its agent within its grace period
    assert service["KillMode"] == ["mixed"] and service["KillSignal"] == ["SIGTERM"]
    assert systemd_seconds(service["TimeoutStopSec"][-1]) >= 60
    # the same user and repository as the daemon: the socket is 0600
    assert service["User"] == daemon["User"] and service["WorkingDirectory"] == daemon["WorkingDirectory"]
    argv = exec_start("chant-worker@.service")
    assert argv[0].endswith("/chant")
    assert argv[argv.index("-C") + 1] == service["WorkingDirectory"][-1]
    assert argv[argv.index("-C") + 2 : argv.index("-C") + 4] == ["agent", "worker"]
    owner = argv[argv.index("--owner") + 1]
    assert "%i" in owner, "each instance its own lease owner"
    assert "CHANT_DAEMON" not in " ".join(service.get("Environment", [])), "on the same machine: the socket"


def worker_flags_used() -> set[str]:
    flags = {a for a in container(WORKER)["args"] if a.startswith("--")}
    flags |= {a for a in exec_start("chant-worker@.service") if a.startswith("--")}
    return flags


def test_the_worker_takes_the_flags_used_here():
    """Turns on by itself once `chant agent worker` exists."""
    run = subprocess.run([sys.executable, "-m", "chant_cli", "agent", "worker", "--help"], capture_output=True,
                         text=True, timeout=60)
    if run.returncode != 0 and "invalid choice" in run.stderr:
        pytest.skip("`chant agent worker` is not in this checkout yet")
    assert run.returncode == 0, run.stderr
    for flag in worker_flags_used():
        assert flag in run.stdout, f"chant agent worker has no {flag}"


# --- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[str]:
    """The instructions, continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    return out


def test_the_base_image_is_pinned_and_matches_python():
    froms = [line.split()[1] for line in dockerfile_instructions() if line.startswith("FROM ")]
    assert froms
    for image in froms:
        m = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-(\w+)(@sha256:[0-9a-f]{64})?", image)
        assert m, f"{image}: pin the full version (not latest, not 3.11 alone)"
        assert (int(m.group(1)), int(m.group(2))) == (3, 11)  # requires-python >= 3.11; CI's is 3.11


def test_the_image_runs_as_a_user_with_git():
    lines = dockerfile_instructions()
    assert dockerfile_uid() != 0
    users = [line for line in lines if line.startswith("USER ")]
    assert lines.index(users[-1]) > max(i for i, line in enumerate(lines) if line.startswith("RUN "))
    apt = next(line for line in lines if "apt-get install" in line)
    assert re.search(r"\bgit\b", apt) and re.search(r"\btini\b", apt)
    assert any("pip install" in line for line in lines)


def json_form(line: str) -> list[str]:
    return json.loads(line.split(None, 1)[1])


def test_the_entrypoint_is_chantd_with_its_options():
    lines = dockerfile_instructions()
    (entry,) = [json_form(line) for line in lines if line.startswith("ENTRYPOINT ")]
    assert entry == ["tini", "--", "chantd"]
    (cmd,) = [json_form(line) for line in lines if line.startswith("CMD ")]
    args = parse_chantd(cmd)
    assert args.root == "/data/repo"
    assert {args.api_port, args.metrics_port} == set(ports(container(DAEMON)).values())


def test_the_healthcheck_asks_livez_on_the_api_port():
    (check,) = [line for line in dockerfile_instructions() if line.startswith("HEALTHCHECK ")]
    m = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    assert m, check
    assert int(m.group(1)) == ports(container(DAEMON))["api"]
    assert m.group(2) == "/livez" and m.group(2) in daemon_routes()["api"]


def test_what_the_dockerfile_copies_exists_and_is_in_the_context():
    ignored = [line.strip() for line in (Path(ROOT) / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    copied = []
    for line in dockerfile_instructions():
        if line.startswith("COPY ") and "--from=" not in line:
            copied += line.split()[1:-1]
    assert copied
    for source in copied:
        assert (Path(ROOT) / source).exists(), source
        first = source.split("/")[0]
        assert not any(re.fullmatch(pattern.replace(".", r"\.").replace("*", ".*"), first) for pattern in ignored), (
            f"{source} is copied but .dockerignore leaves it out")
    # what `pip install .` needs to build the package
    for needed in ("pyproject.toml", "README.md", "chantlib", "chant_cli", "chantd"):
        assert needed in copied
    assert ".venv" in ignored and ".git" in ignored


# --- Grafana ----------------------------------------------------------------------------------


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_panels() -> list[dict]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p["targets"]]


def test_the_dashboard_is_sound():
    dash = dashboard()
    assert dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}"


def test_the_dashboard_reads_only_exported_metrics():
    exprs = dashboard_exprs()
    variables = [v["definition"].removeprefix("label_values(").rsplit(",", 1)[0]
                 for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    check_exprs(exprs + variables)
    read = set().union(*(promql_metrics(e) for e in exprs))
    for subject in ("chant_queue_depth", "chant_specs_ready", "chant_locks_active", "chant_agents_active",
                    "chant_agent_completions_total", "chant_spec_duration_seconds_bucket",
                    "chant_queue_wait_seconds_bucket", "chant_request_duration_seconds_bucket",
                    "chant_lock_acquisitions_total", "chant_lock_expirations_total", "chant_git_unknown_refs_total",
                    "chant_notifications_total"):
        assert subject in read, f"no panel shows {subject}"
    assert any("by (le, cmd)" in e and "0.99" in e for e in exprs), "request latency p99 by cmd"
    assert any('result="conflict"' in e for e in exprs), "lock conflicts"


def test_the_dashboard_queries_parse(tmp_path):
    promtool_parses(dashboard_exprs(), tmp_path)


# --- Prometheus -------------------------------------------------------------------------------


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((PROMETHEUS / "chant-alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_the_alert_rules_are_complete():
    rules = alert_rules()
    for rule in rules:
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    check_exprs([rule["expr"] for rule in rules])
    by_expr = {re.sub(r"\s+", " ", rule["expr"]): rule for rule in rules}
    # chant-format §12's three
    assert by_expr['up{job="chant"} == 0']["labels"]["severity"] == "critical"
    assert by_expr["chant_queue_depth > 100"]["for"] == "10m"
    assert 'rate(chant_agent_completions_total{result="failure"}[1h]) * 3600 > 0.1' in by_expr
    read = set().union(*(promql_metrics(rule["expr"]) for rule in rules))
    assert {"chant_lock_expirations_total", "chant_git_unknown_refs_total", "chant_notifications_total"} <= read


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([need("promtool"), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules():
    run = promtool("check", "rules", "chant-alerts.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_test_rules():
    run = promtool("test", "rules", "chant-alerts.test.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_check_config():
    run = promtool("check", "config", "prometheus.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_check_kubernetes_config():
    run = promtool("check", "config", "prometheus-kubernetes.yml")
    if "kubernetes_sd_configs not found" in run.stdout + run.stderr:
        pytest.skip("this promtool is built without Kubernetes service discovery (Debian's)")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_scrape_jobs_are_the_ones_the_alerts_expect():
    for name in ("prometheus.yml", "prometheus-kubernetes.yml"):
        config = yaml.safe_load((PROMETHEUS / name).read_text(encoding="utf-8"))
        assert [job["job_name"] for job in config["scrape_configs"]] == ["chant"], name
        assert config["rule_files"] == ["chant-alerts.yml"], name
    static = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    (target,) = static["scrape_configs"][0]["static_configs"][0]["targets"]
    from chantlib.config import DEFAULTS

    assert target == f"localhost:{DEFAULTS['scale']['daemon']['metrics_port']}"


# --- the docs ---------------------------------------------------------------------------------


def test_docs_scale_covers_the_deployment():
    text = (Path(ROOT) / "docs" / "scale.md").read_text(encoding="utf-8")
    for model in ("Solo, no daemon", "Solo, with daemon", "Team, shared machine", "Scale, Kubernetes"):
        assert f"## {model}" in text, model
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            assert str(path.relative_to(ROOT)) in text, f"docs/scale.md does not mention {path.relative_to(ROOT)}"
    for name in ("Dockerfile", "scale.limits.max_agents", "max_per_project", "per_project", "spec_timeout",
                 "chant_lock_expirations_total", "stale_token"):
        assert name in text, name
    readme = (Path(ROOT) / "README.md").read_text(encoding="utf-8")
    assert "(docs/scale.md)" in readme
