"""code_version() names the checkout that made a file; cpu_model() the CPU that measured a figure."""

import re
import subprocess
from pathlib import Path

from models.version import code_version, cpu_model, shown_path


def test_names_the_commit_and_marks_uncommitted_changes(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = code_version(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{7,40}", clean), clean
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path) == f"{clean}-dirty"


def test_unknown_outside_git(tmp_path: Path) -> None:
    assert code_version(tmp_path) == "unknown"


def test_cpu_model_is_this_machines_name() -> None:
    name = cpu_model()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        assert name in cpuinfo.read_text()
    assert name.strip()


def test_shown_paths_are_relative_inside_the_working_directory_and_bare_names_outside(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "repo" / "weights").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    assert shown_path(tmp_path / "repo" / "weights" / "judge.pt") == "weights/judge.pt"
    assert shown_path(Path("weights/judge.pt")) == "weights/judge.pt"
    assert shown_path(tmp_path / "elsewhere" / "served4") == "served4"
