"""A git repository at a ref as an agent source, cloned with the system `git` into a cache.

The cache under ``$MICROAGENTS_HOME/registry/git`` holds one bare mirror per repository URL and
one checkout per commit. A checkout never changes once made (it is named by its commit), so
two refs at the same commit share it. The mirror is fetched once per process so that a branch
or a moved tag is seen; when the remote cannot be reached but the ref is already in the
mirror, the cached commit is used and a warning says so.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .._settings import microagents_home
from ..errors import GitError, Problem, RegistryError
from ._registry import AgentEntry, FolderSource, WorkflowEntry

GIT_TIMEOUT_SECONDS = 300.0
_FULL_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_USERINFO = re.compile(r"(://[^/@:\s]+):[^/@\s]+@")


@dataclass
class GitSource:
    """Agents and workflows in a git repository at `ref` (a branch, tag or commit), optionally
    only those under `subdirectory`."""

    url: str
    ref: str
    subdirectory: str = ""
    name: str = ""
    _folder: FolderSource | None = field(default=None, init=False, repr=False)
    _warnings: list[Problem] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.ref or self.ref.startswith("-"):
            # git would read it as an option.
            raise RegistryError(
                "MA803", f"'{self.ref}' is not a git ref; give a branch, tag or commit"
            )
        suffix = f"#{self.subdirectory}" if self.subdirectory else ""
        # The name is shown and written to the lock file: never with a password in it.
        self.name = redact(self.name or f"git+{self.url}@{self.ref}{suffix}")

    def entries(self) -> Iterable[AgentEntry]:
        return self._checkout().entries()

    def workflows(self) -> Iterable[WorkflowEntry]:
        return self._checkout().workflows()

    def problems(self) -> list[Problem]:
        return [*self._warnings, *self._checkout().problems()]

    def _checkout(self) -> FolderSource:
        if self._folder is None:
            root = self._materialize()
            folder = root / self.subdirectory if self.subdirectory else root
            if not folder.is_dir():
                raise GitError(
                    f"{self.name}: the repository has no folder '{self.subdirectory}' at "
                    f"{self.ref}; fix the subdirectory"
                )
            self._folder = FolderSource(folder, name=self.name)
        return self._folder

    def _materialize(self) -> Path:
        cache = (microagents_home() / "registry" / "git").resolve()
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        mirror = cache / "repos" / f"{key}.git"
        fetched = False
        if not mirror.is_dir():
            try:
                _atomically(
                    mirror, lambda tmp: _git("clone", "--bare", "--quiet", "--", self.url, str(tmp))
                )
            except GitError as exc:
                raise GitError(
                    f"cannot clone {redact(self.url)} ({exc}); check the URL, and that this "
                    "machine can reach it (git credentials are never prompted for)"
                ) from None
            fetched = True
        commit = _commit(mirror, self.ref)
        if not fetched and not (commit and _FULL_COMMIT.match(self.ref)):
            try:
                _git(
                    "--git-dir", str(mirror), "fetch", "--quiet", "--prune", "--force", "origin",
                    "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
                )  # fmt: skip
                commit = _commit(mirror, self.ref)
            except GitError as exc:
                if commit is None:
                    raise
                self._warnings.append(
                    Problem(
                        "MA802",
                        f"{self.name}: cannot fetch ({exc}); using the cached commit {commit[:12]}",
                        severity="warning",
                    )
                )
        if commit is None:
            known = _git("--git-dir", str(mirror), "for-each-ref", "--format=%(refname:short)",
                         "refs/heads", "refs/tags").split()  # fmt: skip
            raise GitError(
                f"ref '{self.ref}' not found in {redact(self.url)}; it has: "
                f"{', '.join(known) or 'no branches or tags'}"
            )
        checkout = cache / "checkouts" / key / commit

        def clone_at_commit(tmp: Path) -> None:
            _git("clone", "--quiet", "--shared", "--no-checkout", str(mirror), str(tmp))
            _git("-C", str(tmp), "checkout", "--quiet", "--detach", commit)

        if not checkout.is_dir():
            _atomically(checkout, clone_at_commit)
        return checkout


def parse_git_spec(text: str) -> tuple[str, str, str]:
    """``git+URL@REF#SUBDIR`` → (url, ref, subdirectory), as pip writes git requirements."""
    rest = text.removeprefix("git+")
    rest, _, subdirectory = rest.partition("#")
    at = rest.rfind("@")
    if at <= rest.rfind("/") or at == len(rest) - 1:
        raise RegistryError(
            "MA803",
            f"git source '{text}' names no ref; write git+URL@REF, e.g. "
            "git+https://github.com/acme/agents.git@v1.2.0 (a branch, tag or commit)",
        )
    return rest[:at], rest[at + 1 :], subdirectory.strip("/")


def redact(text: str) -> str:
    """`text` with the password of any ``scheme://user:password@host`` URL replaced."""
    return _USERINFO.sub(r"\1:***@", text)


def _commit(mirror: Path, ref: str) -> str | None:
    try:
        found = _git(
            "--git-dir", str(mirror), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"
        )
    except GitError:
        return None
    return found.strip() or None


def _git(*args: str) -> str:
    # Never prompt for credentials: a prompt would hang a batch run or CI job.
    env = {
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",  # unless the user configured their own
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
    }
    try:
        done = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise GitError(
            "git is not installed or not on PATH; install git to use git sources"
        ) from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS:.0f} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        # git's first "fatal:" line names the cause; what follows is general advice.
        cause = next((line for line in lines if line.startswith(("fatal:", "error:"))), None)
        raise GitError(redact(cause or (lines[-1] if lines else f"git {args[0]} failed")))
    return done.stdout


def _atomically(target: Path, make: Callable[[Path], object]) -> None:
    """Make `target` in a temporary folder beside it and rename it into place, so that an
    interrupted clone never leaves a half-made cache entry (and a racing process's wins)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.rmtree(tmp)
        make(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
