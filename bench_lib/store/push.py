"""``convbench store push --git-branch results``: this machine's partitions of the store onto a git branch.

A fleet keeps its store on one branch that every machine pushes to. Each machine commits only its own
partition folders (``<table>/machine_key=<its key>/``): their files are added to the branch's newest tree
and pushed; when another machine pushed in between (the push is refused as not a fast-forward), the
branch is fetched again and the commit rebuilt on it, up to ``attempts`` times. Since no two machines
touch one path, rebuilding is always right and no merge is ever needed.

The commit is built with git's plumbing in a temporary index (``read-tree``, ``update-index
--cacheinfo``, ``write-tree``, ``commit-tree``): the checkout's working tree, index and HEAD are never
touched, so a nightly job can push from the very checkout it benchmarked in.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_lib.store import schema

ATTEMPTS = 5  # pushes tried before giving up (each after fetching what the others pushed)
BACKOFF_S = 2.0  # the wait before attempt k is up to k × BACKOFF_S seconds (random, so racers spread)


class PushError(RuntimeError):
    """git refused, or the branch moved under every attempt."""


@dataclass(frozen=True)
class Pushed:
    commit: str | None  # None: the branch already held every file
    files: int
    attempts: int


def _git(repo: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env, input=input, timeout=300)
    if out.returncode != 0:
        raise PushError(f"git {' '.join(args[:2])}: {out.stderr.decode(errors='replace').strip()[-500:]}")
    return out.stdout.decode().strip()


def partition_files(store: Path, keys: set[str]) -> list[Path]:
    """Every file of the store's tables under the ``machine_key`` folders ``keys`` (hidden files, a write in
    flight, left out)."""
    found = []
    for table in schema.TABLES:
        for key in sorted(keys):
            folder = store / table / f"machine_key={key}"
            found += [p for p in sorted(folder.rglob("*.parquet")) if not p.name.startswith(".") and p.is_file()]
    return found


def push(store: Path, keys: set[str], branch: str, remote: str = "origin", attempts: int = ATTEMPTS) -> Pushed:
    """Put the files of partitions ``keys`` of ``store`` (a folder inside a git checkout) on ``remote``'s
    ``branch``, at the same path they have in the checkout."""
    repo = Path(_git(store, "rev-parse", "--show-toplevel"))
    files = partition_files(store, keys)
    if not files:
        raise PushError(f"no files of {', '.join(sorted(keys))} under {store}: nothing of this machine's to push")
    blobs = [
        (_git(repo, "hash-object", "-w", str(f)), f.resolve().relative_to(repo.resolve()).as_posix()) for f in files
    ]
    for attempt in range(1, attempts + 1):
        parent = _fetch(repo, remote, branch)
        commit = _commit(repo, parent, blobs, f"results: {', '.join(sorted(keys))} ({len(files)} files)")
        if commit is None:
            return Pushed(None, len(files), attempt)
        pushed = subprocess.run(
            ["git", "-C", str(repo), "push", "--quiet", remote, f"{commit}:refs/heads/{branch}"],
            capture_output=True,
            timeout=300,
        )
        if pushed.returncode == 0:
            return Pushed(commit, len(files), attempt)
        time.sleep(random.uniform(0, attempt * BACKOFF_S))  # another machine pushed first: fetch, rebuild
    raise PushError(f"{remote} {branch}: the branch moved under each of {attempts} pushes; run again")


def _fetch(repo: Path, remote: str, branch: str) -> str | None:
    """The newest commit of the remote branch (None where the branch does not exist yet)."""
    heads = _git(repo, "ls-remote", "--heads", remote, branch)
    if not heads:
        return None
    _git(repo, "fetch", "--quiet", remote, f"+refs/heads/{branch}:refs/convbench/{branch}")
    return _git(repo, "rev-parse", f"refs/convbench/{branch}")


def _commit(repo: Path, parent: str | None, blobs: list[tuple[str, str]], message: str) -> str | None:
    """A commit of ``parent``'s tree plus ``blobs`` (sha, path), built in a temporary index; None where
    ``parent`` holds them all already."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent:
            _git(repo, "read-tree", parent, env=env)
        listing = "".join(f"100644 {sha}\t{path}\n" for sha, path in blobs).encode()
        _git(repo, "update-index", "--add", "--index-info", env=env, input=listing)
        tree = _git(repo, "write-tree", env=env)
    if parent and tree == _git(repo, "rev-parse", f"{parent}^{{tree}}"):
        return None
    env = None  # a configured identity (the CI job's) is used as it is
    if subprocess.run(["git", "-C", str(repo), "config", "user.email"], capture_output=True).returncode != 0:
        env = {**os.environ, "GIT_AUTHOR_NAME": "convbench", "GIT_AUTHOR_EMAIL": "convbench@localhost"}
        env.update(GIT_COMMITTER_NAME="convbench", GIT_COMMITTER_EMAIL="convbench@localhost")
    return _git(repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", message, env=env)
