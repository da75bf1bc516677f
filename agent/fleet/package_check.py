"""Whether a pod will be able to install `--package`, asked from this machine before anything is rented.

A pinned `name==version` must be on pip's index (`pip index versions`, through pip's own
configuration); a git requirement `name @ git+URL@REF` must resolve (`git ls-remote`). Both run
the `pip` and `git` on PATH. An index or host that cannot be reached is not a "no": the answer is
then unknown, which a dry run reports and `pods up` refuses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PUBLISH_HINT = "pass --package 'lora-sweep @ git+https://github.com/ORG/lora-sweep@TAG' (docs/gpu.md, Package)"
UNREACHABLE = re.compile(r"connection|name resolution|resolve host|unable to access|timed out", re.IGNORECASE)
GIT_REQUIREMENT = re.compile(r"\s*[\w.-]+\s*@\s*git\+(?P<url>\S+?)(?:@(?P<ref>[^@/\s]+))?\s*")
PINNED = re.compile(r"\s*(?P<name>[\w.-]+)\s*==\s*(?P<version>[\w.+!-]+)\s*")
SHA = re.compile(r"[0-9a-f]{40}")
MISSING_COMMIT = re.compile(r"not our ref|couldn't find remote ref", re.IGNORECASE)


@dataclass(frozen=True)
class PackageCheck:
    installable: bool | None
    """True: it resolves; False: it does not; None: the index or host could not be reached."""
    message: str


def check_package(requirement: str, env: Mapping[str, str]) -> PackageCheck:
    git = GIT_REQUIREMENT.fullmatch(requirement)
    if git:
        return check_git_ref(git["url"], git["ref"] or "HEAD", env)
    pinned = PINNED.fullmatch(requirement)
    if pinned:
        return check_pinned(pinned["name"], pinned["version"], env)
    return PackageCheck(False, f"--package {requirement!r}: give name==version or 'name @ git+URL@REF'")


def check_pinned(name: str, version: str, env: Mapping[str, str]) -> PackageCheck:
    pip = shutil.which("pip", path=env.get("PATH"))
    if pip is None:
        return PackageCheck(None, "pip is not on PATH: cannot ask the package index")
    done = run([pip, "index", "versions", name], env)
    output = done.stdout + done.stderr
    if done.returncode != 0 and UNREACHABLE.search(output):
        return PackageCheck(None, f"cannot reach the package index to check {name}=={version}")
    listed = re.search(r"Available versions: (.*)", done.stdout) if done.returncode == 0 else None
    versions = [v.strip() for v in listed[1].split(",")] if listed else []
    if version in versions:
        return PackageCheck(True, f"{name}=={version} is on the package index")
    found = f"it has {', '.join(versions[:5])}" if versions else "it has no version of it"
    return PackageCheck(False, f"{name}=={version} is not on the package index ({found}): {PUBLISH_HINT}")


def check_git_ref(url: str, ref: str, env: Mapping[str, str]) -> PackageCheck:
    git = shutil.which("git", path=env.get("PATH"))
    if git is None:
        return PackageCheck(None, "git is not on PATH: cannot check the git ref")
    done = run([git, "ls-remote", url] + ([] if SHA.fullmatch(ref) else [ref]), env)
    if done.returncode != 0:
        if UNREACHABLE.search(done.stderr) and "not found" not in done.stderr:
            return PackageCheck(None, f"cannot reach {url} to check {ref}")
        return PackageCheck(False, f"{url} cannot be read ({last_line(done.stderr)}): {PUBLISH_HINT}")
    shas = {line.split()[0] for line in done.stdout.splitlines() if line.strip()}
    if (ref in shas) if SHA.fullmatch(ref) else shas:
        return PackageCheck(True, f"{ref} resolves in {url}")
    if SHA.fullmatch(ref):  # pip installs any pushed commit, not only the tip of a branch or tag
        return check_commit(git, url, ref, env)
    return PackageCheck(False, f"{ref} is no branch or tag of {url}: push it, or {PUBLISH_HINT}")


def check_commit(git: str, url: str, sha: str, env: Mapping[str, str]) -> PackageCheck:
    """Whether `url` holds commit `sha`: fetched alone into a throwaway bare repository, as GitHub allows."""
    with tempfile.TemporaryDirectory() as scratch:
        run([git, "init", "-q", "--bare", scratch], env)
        done = run([git, "-C", scratch, "fetch", "-q", "--depth=1", url, sha], env)
    if done.returncode == 0:
        return PackageCheck(True, f"{sha} is a commit of {url}")
    if MISSING_COMMIT.search(done.stderr):
        return PackageCheck(False, f"{sha} is no commit of {url}: push it, or {PUBLISH_HINT}")
    return PackageCheck(None, f"{sha} could not be checked in {url} ({last_line(done.stderr)})")


def default_package(package_root: Path, version: str, env: Mapping[str, str], warn: Callable[[str], None]) -> str:
    """What pods install when --package is not given: this checkout's commit, fetched from its
    `origin`, when this package runs from a git clone with an https origin; else this version.
    Uncommitted changes are warned about: the pods run the commit, not this working tree."""
    git = shutil.which("git", path=env.get("PATH"))
    if git is not None and (package_root / ".git").exists():
        origin = run([git, "-C", str(package_root), "remote", "get-url", "origin"], env)
        head = run([git, "-C", str(package_root), "rev-parse", "HEAD"], env)
        if origin.returncode == 0 and head.returncode == 0 and origin.stdout.startswith("https://"):
            if run([git, "-C", str(package_root), "status", "--porcelain"], env).stdout.strip():
                warn(f"warning: {package_root} has uncommitted changes; the pods run its commit {head.stdout[:12]}")
            return f"lora-sweep @ git+{without_credentials(origin.stdout.strip())}@{head.stdout.strip()}"
    return f"lora-sweep=={version}"


def without_credentials(url: str) -> str:
    """The URL without any `user:password@`: a token in an origin must never reach a pod or a log."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def run(argv: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 1, "", "timed out")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
