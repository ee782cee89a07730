"""Registry sources: folders, git repositories at a ref, installed packages, configuration."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import microagents as ma
from microagents.registry._config import configured_sources, make_source
from microagents.registry._git_source import GitSource
from registry_helpers import (
    GIT_ENV,
    agent_yaml,
    commit_all,
    git,
    install_example_package,
    workflow_yaml,
    write,
)


@pytest.fixture(autouse=True)
def _hermetic_git(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def codes(problems: list[ma.errors.Problem]) -> list[str]:
    return [p.code for p in problems]


# -- folders ---------------------------------------------------------------------------------


def test_earlier_folder_wins_and_the_registry_says_which(tmp_path: Path) -> None:
    write(tmp_path / "mine" / "qa.yaml", agent_yaml("team/qa", "1.0.0"))
    write(tmp_path / "shared" / "qa.yaml", agent_yaml("team/qa", "2.0.0"))
    write(tmp_path / "shared" / "other.yaml", agent_yaml("team/other", "1.0.0"))
    project = ma.Project(tmp_path, sources=["mine", "shared"])
    registry = project.registry
    # A name belongs to the first source that offers it, even when a later one is newer.
    assert registry.resolve("team/qa").reference == "team/qa@1.0.0"
    assert registry.providers("team/qa") == ["mine", "shared"]
    assert registry.resolve("team/other").reference == "team/other@1.0.0"
    with pytest.raises(ma.errors.ResolutionError, match=r"matches '\^2'; available: 1.0.0") as exc:
        registry.resolve("team/qa@^2")
    assert exc.value.code == "MA301"


def test_a_folder_offers_workflows_beside_agents(tmp_path: Path) -> None:
    write(tmp_path / "agents" / "qa.yaml", agent_yaml("team/qa", "1.0.0"))
    write(tmp_path / "agents" / "flows" / "ask.yaml", workflow_yaml("team/ask", "team/qa@^1"))
    registry = ma.Project(tmp_path).registry
    assert [e.name for e in registry.entries()] == ["team/qa"]
    assert [(e.name, str(e.version)) for e in registry.workflows()] == [("team/ask", "1.0.0")]
    assert registry.problems() == []


def test_a_malformed_agent_is_reported_with_file_and_line_and_the_others_load(
    tmp_path: Path,
) -> None:
    write(tmp_path / "agents" / "good.yaml", agent_yaml("team/good", "1.0.0"))
    bad = write(
        tmp_path / "agents" / "bad.yaml",
        agent_yaml("team/bad", "1.0.0").replace("description: Answer", "descripton: Answer"),
    )
    registry = ma.Project(tmp_path).registry
    assert registry.resolve("team/good").reference == "team/good@1.0.0"
    problems = registry.problems()
    assert {(p.location.file, p.location.line) for p in problems} >= {(bad, 3)}
    assert "MA202" in codes(problems)
    with pytest.raises(
        ma.errors.ResolutionError, match=r"these agent files failed to load: .*bad\.yaml"
    ):
        registry.resolve("team/bad")


def test_the_same_version_with_different_content_in_one_source(tmp_path: Path) -> None:
    write(tmp_path / "agents" / "a.yaml", agent_yaml("team/qa", "1.0.0"))
    write(tmp_path / "agents" / "b.yaml", agent_yaml("team/qa", "1.0.0", "Something else."))
    registry = ma.Project(tmp_path).registry
    (problem,) = registry.problems()
    assert problem.code == "MA307"
    assert problem.location.file == tmp_path / "agents" / "b.yaml"
    assert "team/qa@1.0.0 is also defined in" in problem.message


def test_a_missing_folder_source_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    project = ma.Project(tmp_path, sources=["no_such_folder"])
    with pytest.raises(
        ma.errors.RegistryError, match=r"folder .*no_such_folder does not exist"
    ) as exc:
        project.registry.entries()
    assert exc.value.code == "MA801"


def test_content_hash_ignores_formatting_but_not_the_template(tmp_path: Path) -> None:
    text = agent_yaml("team/qa", "1.0.0").replace(
        'prompt: "Answer: {{ question }}"', "prompt: qa.j2"
    )
    write(tmp_path / "a" / "qa.yaml", text)
    write(tmp_path / "a" / "qa.j2", "Answer: {{ question }}\n")
    write(
        tmp_path / "b" / "qa.yaml",
        "# a comment\n" + text.replace("version: 1.0.0", "version: '1.0.0'"),
    )
    write(tmp_path / "b" / "qa.j2", "Answer: {{ question }}\r\n")
    write(tmp_path / "c" / "qa.yaml", text)
    write(tmp_path / "c" / "qa.j2", "Answer briefly: {{ question }}\n")
    hashes = [
        ma.registry.AgentRegistry.from_folders(tmp_path / f).find("team/qa").hash for f in "abc"
    ]
    assert hashes[0] == hashes[1] != hashes[2]
    assert hashes[0].startswith("sha256:")


# -- configuration ---------------------------------------------------------------------------


def test_sources_come_from_pyproject_or_microagents_toml(tmp_path: Path) -> None:
    assert configured_sources(tmp_path) == ["packages"]
    (tmp_path / "agents").mkdir()
    assert configured_sources(tmp_path) == ["agents", "packages"]
    write(tmp_path / "pyproject.toml", '[tool.microagents]\nsources = ["shared", "agents"]\n')
    assert configured_sources(tmp_path) == ["shared", "agents"]
    write(tmp_path / "microagents.toml", 'sources = [{git = "../repo", ref = "v1"}]\n')
    assert configured_sources(tmp_path) == [{"git": "../repo", "ref": "v1"}]
    write(tmp_path / "microagents.toml", "sources = [\n")
    with pytest.raises(ma.MicroagentsError, match=r"microagents.toml: invalid TOML: "):
        configured_sources(tmp_path)


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("shared", "FolderSource", "shared"),
        ({"folder": "shared"}, "FolderSource", "shared"),
        (
            "git+https://example.com/a.git@v1#agents",
            "GitSource",
            "git+https://example.com/a.git@v1#agents",
        ),
        (
            {"git": "https://example.com/a.git", "ref": "v1"},
            "GitSource",
            "git+https://example.com/a.git@v1",
        ),
        ("packages", "PackageSource", "packages"),
        ("packages:team,ops", "PackageSource", "packages:team,ops"),
        ({"packages": True}, "PackageSource", "packages"),
        ({"packages": ["team"]}, "PackageSource", "packages:team"),
    ],
)
def test_each_way_of_writing_a_source(
    tmp_path: Path, spec: str | dict[str, object], kind: str, name: str
) -> None:
    source = make_source(spec, tmp_path)
    assert (type(source).__name__, source.name) == (kind, name)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('sources = "agents"\n', "`sources` must be a list"),
        ("sources = [{folder = 'a', git = 'b'}]\n", "exactly one of folder, git or packages"),
        ("sources = [{git = 'b'}]\n", "needs a ref"),
        ("sources = ['git+https://example.com/agents.git']\n", "names no ref"),
        ("sources = ['git+https://example.com/a.git@--upload-pack=x']\n", "is not a git ref"),
    ],
)
def test_bad_configuration_says_what_to_write(tmp_path: Path, config: str, message: str) -> None:
    write(tmp_path / "microagents.toml", config)
    with pytest.raises(ma.errors.RegistryError, match=message) as exc:
        ma.Project(tmp_path)
    assert exc.value.code == "MA803"


# -- git repositories --------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with team/qa 1.0.0 tagged v1, then 1.1.0 on main."""
    repo = tmp_path / "team-agents"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo / "agents" / "qa.yaml", agent_yaml("team/qa", "1.0.0"))
    write(repo / "README.md", "not a spec\n")
    commit_all(repo, "qa 1.0.0")
    git(repo, "tag", "v1")
    write(repo / "agents" / "qa.yaml", agent_yaml("team/qa", "1.1.0"))
    commit_all(repo, "qa 1.1.0")
    return repo


def test_a_git_source_resolves_at_its_ref(repo: Path, tmp_path: Path) -> None:
    url = repo.as_uri()  # file://, no network
    at_tag = ma.Project(tmp_path, sources=[f"git+{url}@v1#agents"]).registry
    assert at_tag.resolve("team/qa").reference == "team/qa@1.0.0"
    at_main = ma.Project(tmp_path, sources=[f"git+{url}@main#agents"]).registry
    assert at_main.resolve("team/qa").reference == "team/qa@1.1.0"
    (entry,) = at_main.entries()
    assert entry.source_name == f"git+{url}@main#agents"
    home = Path(os.environ["MICROAGENTS_HOME"])
    assert entry.sourced.source.file is not None
    assert entry.sourced.source.file.is_relative_to(home / "registry" / "git" / "checkouts")


def test_a_git_source_from_configuration_with_a_relative_path(repo: Path, tmp_path: Path) -> None:
    project_dir = tmp_path / "project"
    write(
        project_dir / "microagents.toml",
        'sources = [{git = "../team-agents", ref = "v1", subdirectory = "agents"}]\n',
    )
    assert ma.Project(project_dir).registry.resolve("team/qa").reference == "team/qa@1.0.0"


def test_a_cached_git_source_works_when_the_remote_is_gone(repo: Path, tmp_path: Path) -> None:
    spec = f"git+{repo}@v1#agents"
    assert ma.Project(tmp_path, sources=[spec]).registry.resolve("team/qa")
    shutil.rmtree(repo)
    registry = ma.Project(tmp_path, sources=[spec]).registry
    assert registry.resolve("team/qa").reference == "team/qa@1.0.0"
    (warning,) = registry.problems()
    assert (warning.code, warning.severity) == ("MA802", "warning")
    assert "using the cached commit" in warning.message


def test_an_unknown_git_ref_lists_the_refs_that_exist(repo: Path, tmp_path: Path) -> None:
    registry = ma.Project(tmp_path, sources=[f"git+{repo}@v9"]).registry
    with pytest.raises(
        ma.errors.RegistryError, match=r"ref 'v9' not found in .*; it has: main, v1"
    ) as exc:
        registry.entries()
    assert exc.value.code == "MA802"


def test_an_unreachable_repository_is_a_clear_error(tmp_path: Path) -> None:
    source = GitSource(str(tmp_path / "nowhere"), "main")
    with pytest.raises(
        ma.errors.RegistryError, match=r"cannot clone .*nowhere \(fatal: .*\); check the URL"
    ):
        list(source.entries())


def test_a_git_subdirectory_that_does_not_exist(repo: Path, tmp_path: Path) -> None:
    registry = ma.Project(tmp_path, sources=[f"git+{repo}@v1#specs"]).registry
    with pytest.raises(ma.errors.RegistryError, match="has no folder 'specs' at v1"):
        registry.entries()


# -- installed packages (entry points) ---------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/team_agents, pip-installed into a folder of its own (once for this module)."""
    return install_example_package(tmp_path_factory.mktemp("install") / "site")


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


def test_an_installed_package_offers_its_agents_and_workflows(
    installed: Path, tmp_path: Path
) -> None:
    registry = ma.Project(tmp_path).registry  # default sources: ./agents, then packages
    agent = registry.resolve("team/refund_checker@^2")
    assert agent.reference == "team/refund_checker@2.1.0"
    assert agent.source.file == installed / "team_agents" / "refund_checker.yaml"
    assert "30 days are refundable" in agent.render_prompt({"ticket": "hi"})
    (flow,) = registry.workflows()
    assert (flow.name, flow.source_name) == ("team/refund_flow", "package:team-agents")


def test_a_project_folder_wins_over_an_installed_package(installed: Path, tmp_path: Path) -> None:
    write(tmp_path / "agents" / "mine.yaml", agent_yaml("team/refund_checker", "0.1.0"))
    registry = ma.Project(tmp_path).registry
    assert registry.resolve("team/refund_checker").reference == "team/refund_checker@0.1.0"
    assert registry.providers("team/refund_checker") == ["agents", "package:team-agents"]


def test_a_named_entry_point_that_is_not_installed(installed: Path, tmp_path: Path) -> None:
    registry = ma.Project(tmp_path, sources=["packages:billing"]).registry
    with pytest.raises(
        ma.errors.RegistryError, match=r"'billing' \(installed: team\); pip install"
    ):
        registry.entries()


def test_pip_installed_package_is_discovered_by_a_fresh_interpreter(
    site: Path, tmp_path: Path
) -> None:
    """The proof end to end: another process with the package on its path lists its agents."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "microagents"), "agents", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record == {
        "name": "team/refund_checker",
        "versions": ["2.1.0"],
        "model": "haiku",
        "tools": [],
        "description": "Decide whether a support ticket asks for a refund that policy allows.",
        "source": "package:team-agents",
    }


def test_a_password_in_a_git_url_is_never_shown(tmp_path: Path) -> None:
    source = GitSource("https://bot:s3cret@127.0.0.1:9/agents.git", "v1")
    assert source.name == "git+https://bot:***@127.0.0.1:9/agents.git@v1"
    with pytest.raises(ma.errors.RegistryError) as exc:
        list(source.entries())
    assert "s3cret" not in str(exc.value)
    assert "cannot clone https://bot:***@127.0.0.1:9/agents.git" in str(exc.value)
