"""deploy/ as a district's IT team runs it: compose mounts every file the district file names into
every broadcaster container, migrates once before anything else starts, runs exactly one beat and
puts the web app behind its health check; the image holds the wheel, not the source tree, and its
build context leaves private things out; systemd accepts the units under the names the
documentation gives them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml
from docker.utils.build import exclude_paths

from tests.web import nginx_site

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEMD_UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
MIGRATED = "service_completed_successfully"
DISTRICT_FILE = PurePosixPath("/etc/broadcaster/district.toml")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def broadcaster_services(spec: dict) -> dict[str, dict]:
    """The services that run the broadcaster image (the ones built from deploy/Dockerfile)."""
    return {name: service for name, service in spec["services"].items() if "build" in service}


def mounts(service: dict) -> dict[PurePosixPath, str]:
    """Container path -> host path, for short (`src:dst[:ro]`) and long volume syntax alike."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        found[PurePosixPath(target)] = source
    return found


def is_mounted(path: PurePosixPath, targets: dict[PurePosixPath, str]) -> bool:
    return any(path == target or target in path.parents for target in targets)


def paths_the_district_file_names(
    config: PurePosixPath, district: dict
) -> dict[str, PurePosixPath]:
    """What the district file names, resolved as broadcaster does (relative to the file)."""
    named = {"BROADCASTER_CONFIG": config}
    if roster := district.get("policy", {}).get("roster"):
        named["policy.roster"] = config.parent / roster
    for folder in district.get("templates_dirs", []):
        named[f"templates_dirs {folder!r}"] = config.parent / folder
    if publish_dir := district.get("web", {}).get("publish_dir"):
        named["web.publish_dir"] = config.parent / publish_dir
    return named


def signing_key_named(config: PurePosixPath, district: dict) -> PurePosixPath | None:
    key = district.get("records", {}).get("signing_key")
    return config.parent / key if key else None


def volume_entries(service: dict) -> list[dict]:
    """The service's volumes in the long syntax (short `src:dst[:ro]` entries converted)."""
    entries = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            entries.append({"source": source, "target": target, "read_only": mode == ["ro"]})
        else:
            entries.append(volume)
    return entries


def worker_command(service: dict) -> list[str] | None:
    command = service.get("command")
    if isinstance(command, list) and command[:2] == ["broadcaster", "worker"]:
        return command
    return None


def test_every_path_the_district_file_names_is_mounted_in_every_broadcaster_service():
    services = broadcaster_services(compose())
    assert services, "compose.yaml builds no broadcaster service"
    missing = []
    for name, service in services.items():
        config = PurePosixPath(service["environment"]["BROADCASTER_CONFIG"])
        targets = mounts(service)
        # The district file the containers read is the one this test reads.
        source = targets.get(config)
        if source is None:
            missing.append(f"{name}: the district file {config} is not mounted")
            continue
        district = tomllib.loads((DEPLOY / source).read_text())
        for what, path in paths_the_district_file_names(config, district).items():
            if not is_mounted(path, targets):
                missing.append(f"{name}: {what} ({path}) is not mounted")
    assert not missing, "\n".join(missing)


# The services that sign: beat's worker takes the checkpoint task, web signs the console's exports.
SIGNERS = {"beat": "writable", "web": "read-only"}


def test_the_signing_key_is_mounted_only_where_it_signs_and_writable_only_in_beat():
    services = broadcaster_services(compose())
    config = PurePosixPath(services["web"]["environment"]["BROADCASTER_CONFIG"])
    district = tomllib.loads((DEPLOY / mounts(services["web"])[config]).read_text())
    key = signing_key_named(config, district)
    assert key is not None, "production.toml names no [records] signing_key: nothing is signed"
    found = {}
    for name, service in services.items():
        for volume in volume_entries(service):
            if PurePosixPath(volume["target"]) in key.parents or volume["target"] == str(key):
                found[name] = "read-only" if volume.get("read_only") else "writable"
                assert volume.get("bind", {}).get("create_host_path") is False, name
    assert found == SIGNERS


def test_the_public_site_is_a_volume_the_workers_write_and_nginx_only_reads(tmp_path):
    spec = compose()
    services = broadcaster_services(spec)
    site = next(iter(services.values()))
    district = tomllib.loads((DEPLOY / mounts(site)[DISTRICT_FILE]).read_text())
    publish_dir = PurePosixPath(district["web"]["publish_dir"])
    # Every broadcaster container writes the same named volume there (any worker may publish).
    volumes = {
        name: next((v for v in volume_entries(s) if PurePosixPath(v["target"]) == publish_dir), {})
        for name, s in services.items()
    }
    assert {v.get("type") for v in volumes.values()} == {"volume"}, volumes
    assert len({v["source"] for v in volumes.values()}) == 1
    assert not any(v.get("read_only") for v in volumes.values()), "the workers must write it"
    volume = next(iter(volumes.values()))["source"]
    assert volume in spec["volumes"]
    # The image makes the folder its user's, so the volume is made writable for the workers.
    assert re.search(
        rf"install -d -o broadcaster\b.*{publish_dir}\b", " ".join(dockerfile_stages()["runtime"])
    )

    public = spec["services"]["public-site"]
    assert public["image"].startswith("nginx:")
    served = {PurePosixPath(v["target"]): v for v in volume_entries(public)}
    server_conf = (DEPLOY / "nginx" / "compose-site.conf").read_text()
    root = PurePosixPath(re.search(r"^\s*root\s+(\S+);", server_conf, re.M).group(1))
    snippet = PurePosixPath(re.search(r"^\s*include\s+(\S+);", server_conf, re.M).group(1))
    assert served[root]["source"] == volume and served[root].get("read_only") is True
    assert served[snippet]["source"] == "./nginx/public-site.conf"
    assert served[PurePosixPath("/etc/nginx/conf.d/default.conf")]["source"] == (
        "./nginx/compose-site.conf"
    )
    # After migrate: a volume an nginx container made first would be root's, not the workers'.
    assert public["depends_on"]["migrate"]["condition"] == MIGRATED

    nginx = nginx_site.binary()
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    text = server_conf.replace(str(snippet), str(nginx_site.SITE_CONF)).replace(
        str(root), str(tmp_path)
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};\n"
        f"events {{}}\nhttp {{\n{text}\n}}\n"
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "err")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_exactly_one_beat_and_it_is_never_replicated():
    services = broadcaster_services(compose())
    workers = {name: cmd for name, s in services.items() if (cmd := worker_command(s))}
    assert len(workers) >= 2, "compose.yaml should run workers per queue group"
    # `broadcaster worker` runs the beat unless told --no-beat.
    beats = [name for name, command in workers.items() if "--no-beat" not in command]
    assert len(beats) == 1, f"exactly one service may run the beat, not {beats}"
    beat = services[beats[0]]
    assert beat.get("deploy", {}).get("replicas", 1) == 1, f"{beats[0]} runs the beat: one replica"
    assert "scale" not in beat


def test_migrations_run_once_before_every_other_broadcaster_service():
    services = broadcaster_services(compose())
    migrate = services["migrate"]
    assert migrate["command"] == ["broadcaster", "db", "upgrade"]
    assert migrate.get("restart") == "no", "migrate runs once and exits"
    assert migrate.get("deploy", {}).get("replicas", 1) == 1
    late = [
        name
        for name, service in services.items()
        if name != "migrate"
        and not (
            isinstance(service.get("depends_on"), dict)
            and service["depends_on"].get("migrate", {}).get("condition") == MIGRATED
        )
    ]
    assert not late, f"these may start before the migrations finished: {late}"


def test_the_web_app_is_behind_its_health_check():
    spec = compose()
    web = spec["services"]["web"]
    probe = " ".join(web["healthcheck"]["test"])
    bind = web["command"][web["command"].index("--bind") + 1]
    assert f"127.0.0.1:{bind.rsplit(':', 1)[1]}/healthz" in probe, "health check is not /healthz"
    unchecked = [
        name
        for name, service in spec["services"].items()
        if isinstance(service.get("depends_on"), dict)
        and "web" in service["depends_on"]
        and service["depends_on"]["web"].get("condition") != "service_healthy"
    ] + [
        name
        for name, service in spec["services"].items()
        if isinstance(service.get("depends_on"), list) and "web" in service["depends_on"]
    ]
    assert not unchecked, f"these start before the web app is healthy: {unchecked}"


def test_the_drills_profile_checks_the_deployment_and_sends_an_exercise():
    drills = [
        service
        for service in compose()["services"].values()
        if "drills" in service.get("profiles", [])
    ]
    assert drills, "compose.yaml has no `drills` profile"
    script = " ".join(" ".join(s.get("command", [])) for s in drills)
    assert "broadcaster doctor" in script
    assert re.search(r"broadcaster trigger \S+ --kind exercise", script)


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = match.group(1)
            stages[current] = []
        assert current is not None, f"an instruction before the first named stage: {line}"
        stages[current].append(line)
    return stages


def test_the_image_installs_the_locked_wheel_as_a_non_root_user():
    stages = dockerfile_stages()
    build, *final = stages
    user = "root"
    for name in final:  # each later stage builds on the one before (FROM runtime AS web)
        lines = stages[name]
        copies = [line for line in lines if line.split()[0].upper() in ("COPY", "ADD")]
        assert not copies, f"stage {name} copies files in (only the wheel belongs there): {copies}"
        assert not any(" -e " in line for line in lines), f"stage {name}: an editable install"
        user = next((line.split()[1] for line in reversed(lines) if line.startswith("USER ")), user)
        assert user not in ("root", "0"), f"stage {name} runs as root"
    installs = " ".join(line for name in final for line in stages[name] if "pip install" in line)
    assert ".whl" in installs and "-c /tmp/requirements.lock" in installs
    assert any("HEALTHCHECK" in line and "/healthz" in line for line in stages["web"])


LEFT_OUT = [
    ".git/config",
    ".venv/bin/python",
    "benchmarks/.venv/bin/python",
    ".broadcaster/broadcaster.db",
    ".broadcaster-test/secret_key",
    "deploy/secrets.env",
    "deploy/systemd/environment",
    "prod.env",
    "deploy/roster.csv",
    "broadcaster/__pycache__/cli.cpython-311.pyc",
    ".pytest_cache/v/cache/lastfailed",
    ".hypothesis/examples/x",
]


def build_context(tmp_path: Path, files: list[str]) -> set[str]:
    """What Docker sends to the daemon from a tree of these files, by the repository's
    .dockerignore (docker's SDK: the same walk and pattern rules as `docker build`)."""
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    return exclude_paths(str(tmp_path), patterns, dockerfile="deploy/Dockerfile")


def test_the_build_context_leaves_out_history_homes_secrets_and_caches(tmp_path):
    sent = build_context(tmp_path, [*LEFT_OUT, "pyproject.toml"])
    assert "pyproject.toml" in sent
    leaked = [path for path in LEFT_OUT if path in sent]
    assert not leaked, f"sent to the Docker daemon: {leaked}"


def test_the_build_context_keeps_what_the_image_is_built_from(tmp_path):
    copied = [
        source
        for line in dockerfile_stages()["build"]
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    assert copied, "the build stage copies nothing"
    assert all((ROOT / path).exists() for path in copied)
    # The sample district's roster (made-up names) ships in the wheel; a real one never does.
    needed = [
        *(path if (ROOT / path).is_file() else f"{path}/__init__.py" for path in copied),
        "broadcaster/sample_district/roster.csv",
        "broadcaster/web/static/style.css",
        "deploy/Dockerfile",
        "deploy/secrets.env.example",
    ]
    sent = build_context(tmp_path, needed)
    assert [path for path in needed if path not in sent] == []


DOCUMENTED_INSTANCE = re.compile(r"broadcaster-worker@([^\s'\"$()`]+)\.service")


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)
def test_systemd_accepts_the_units_under_their_documented_names(tmp_path):
    """`systemd-analyze verify` in a root holding systemd's own units, ours, and the programs a
    wheel install puts in /opt/broadcaster/venv/bin (this test environment's, copied)."""
    system = Path("/usr/lib/systemd/system")
    shutil.copytree(system, tmp_path / "usr/lib/systemd/system", symlinks=True)
    ours = tmp_path / "etc/systemd/system"
    ours.mkdir(parents=True)
    for unit in SYSTEMD_UNITS:
        shutil.copy(unit, ours)
    venv_bin = tmp_path / "opt/broadcaster/venv/bin"
    venv_bin.mkdir(parents=True)
    installed = Path(sys.executable).parent
    programs = {
        Path(match).name
        for unit in SYSTEMD_UNITS
        for match in re.findall(
            r"^ExecStart=/opt/broadcaster/venv/bin/(\S+)", unit.read_text(), re.M
        )
    }
    for program in programs:
        shutil.copy(installed / program, venv_bin)
    documented = {
        f"broadcaster-worker@{instance}.service"
        for source in [*SYSTEMD_UNITS, ROOT / "README.md"]
        for instance in DOCUMENTED_INSTANCE.findall(source.read_text())
    }
    names = [unit.name for unit in SYSTEMD_UNITS if not unit.name.endswith("@.service")]
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", *names, *sorted(documented)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert any("\\x2c" in name for name in documented), "no queue group with several queues"
