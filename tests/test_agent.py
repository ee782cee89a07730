from __future__ import annotations

from pathlib import Path

import pytest

import microagents as ma

FIXTURES = Path(__file__).parent / "fixtures" / "project"


def test_agent_file_compiles_with_prompt_from_its_j2_file() -> None:
    agent = ma.Project(FIXTURES).load_agent(FIXTURES / "agents" / "router.yaml")
    assert agent.reference == "router@1.0.0"
    assert (
        agent.render_prompt({"text": "I was charged twice"})
        == "Route this ticket: I was charged twice\n"
    )
    assert agent.escalation.ladder == ["haiku", "sonnet"]
    valid = agent.output_model.model_validate({"category": "billing", "confidence": 0.9})
    assert valid.model_dump() == {"category": "billing", "confidence": 0.9}


def test_registry_resolves_ranges_and_explains_misses() -> None:
    registry = ma.registry.AgentRegistry.from_folders(FIXTURES / "agents")
    assert registry.resolve("extractor").reference == "extractor@2.0.0"
    assert registry.resolve("extractor@^1").reference == "extractor@1.2.0"
    assert registry.resolve("extractor@1.2.0") is registry.resolve(
        "extractor@~1.2"
    )  # compiled once
    with pytest.raises(ma.errors.ResolutionError, match="did you mean 'extractor'"):
        registry.resolve("extracter")
    with pytest.raises(ma.errors.ResolutionError, match=r"matches '\^3'; available: 1.2.0, 2.0.0"):
        registry.resolve("extractor@^3")


def test_first_source_wins_for_a_name(tmp_path: Path) -> None:
    override = tmp_path / "agents"
    override.mkdir()
    text = (FIXTURES / "agents" / "validator.yaml").read_text().replace("1.0.0", "0.5.0")
    (override / "validator.yaml").write_text(text)
    registry = ma.registry.AgentRegistry.from_folders(override, FIXTURES / "agents")
    assert registry.resolve("validator").reference == "validator@0.5.0"


def test_a_broken_file_in_a_folder_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text((FIXTURES / "agents" / "validator.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("name: bad\nversion: 1.0.0\n")
    registry = ma.registry.AgentRegistry.from_folders(tmp_path)
    assert registry.resolve("validator").reference == "validator@1.0.0"
    assert {p.code for p in registry.problems()} == {"MA201"}


def test_prompt_warns_about_names_that_are_not_inputs(tmp_path: Path) -> None:
    text = (FIXTURES / "agents" / "validator.yaml").read_text()
    (tmp_path / "v.yaml").write_text(
        text.replace("Check {{ record", "Check {{ recrod }} {{ record")
    )
    agent = ma.Project(tmp_path).load_agent(tmp_path / "v.yaml")
    assert [w.code for w in agent.warnings] == ["MA215"]
    assert "'recrod'" in agent.warnings[0].message


def test_tool_schema_comes_from_the_signature() -> None:
    @ma.tool
    async def lookup_order(order_id: str, include_items: bool = False) -> dict[str, str]:
        """Find an order by its id.

        More detail that the model does not need.
        """
        return {}

    assert lookup_order.name == "lookup_order"
    assert lookup_order.description == "Find an order by its id."
    assert lookup_order.is_async
    assert lookup_order.input_schema["required"] == ["order_id"]
    assert lookup_order.input_schema["properties"]["include_items"]["type"] == "boolean"
    assert lookup_order.output_schema == {
        "additionalProperties": {"type": "string"},
        "type": "object",
    }


def test_an_unknown_agent_points_at_files_that_failed_to_load(tmp_path: Path) -> None:
    (tmp_path / "router.yaml").write_text("name: router\nversion: 1.0\n")
    registry = ma.registry.AgentRegistry.from_folders(tmp_path)
    with pytest.raises(
        ma.errors.ResolutionError, match=r"these agent files failed to load: .*router\.yaml"
    ):
        registry.resolve("router")


def test_a_folder_under_a_dot_path_is_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared" / "agents"
    shared.mkdir(parents=True)
    (shared / "validator.yaml").write_text((FIXTURES / "agents" / "validator.yaml").read_text())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    registry = ma.registry.AgentRegistry.from_folders("../shared/agents")
    assert registry.resolve("validator").reference == "validator@1.0.0"


def test_the_same_version_twice_in_one_folder_is_reported(tmp_path: Path) -> None:
    text = (FIXTURES / "agents" / "validator.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text.replace("Check a record.", "Check a record twice."))
    registry = ma.registry.AgentRegistry.from_folders(tmp_path)
    assert [e.sourced.source.file for e in registry.entries()] == [tmp_path / "a.yaml"]
    (problem,) = registry.problems()
    assert problem.code == "MA307"
    assert problem.location.file == tmp_path / "b.yaml"
