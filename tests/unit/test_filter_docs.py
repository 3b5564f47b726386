"""Every filter a FilterModule exports has its own doc file, and ansible-doc shows that file for it."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILTER_DIR = ROOT / "plugins" / "filter"


def _exported() -> Dict[str, Callable[..., Any]]:
    filters: Dict[str, Callable[..., Any]] = {}
    for path in sorted(FILTER_DIR.glob("*.py")):
        module = importlib.import_module(f"ansible_collections.gpufleet.vllm.plugins.filter.{path.stem}")
        for name, func in module.FilterModule().filters().items():
            assert name not in filters, f"filter {name} is exported twice"
            filters[name] = func
    return filters


FILTERS = _exported()


def _doc(name: str) -> Dict[str, Any]:
    return yaml.safe_load((FILTER_DIR / f"{name}.yml").read_text())


def test_filters_are_found() -> None:
    assert len(FILTERS) >= 17


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_each_filter_has_its_own_doc_file(name: str) -> None:
    doc_file = FILTER_DIR / f"{name}.yml"
    assert doc_file.is_file(), f"filter {name} has no {doc_file.relative_to(ROOT)}"
    doc = _doc(name)
    assert doc["DOCUMENTATION"]["name"] == name
    assert doc["DOCUMENTATION"]["short_description"].strip()
    assert f"gpufleet.vllm.{name}" in doc["EXAMPLES"]
    assert "_value" in doc["RETURN"]


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_documented_options_match_the_arguments(name: str) -> None:
    documentation = _doc(name)["DOCUMENTATION"]
    options = dict(documentation["options"])
    assert "_input" in options, f"{name}.yml does not document _input"
    del options["_input"]
    params = list(inspect.signature(FILTERS[name]).parameters.values())[1:]
    assert [p.name for p in params] == list(options), f"{name}.yml options differ from the filter's arguments"
    for param in params:
        has_default = param.default is not inspect.Parameter.empty
        assert bool(options[param.name].get("required")) is not has_default, (
            f"{name}.yml: option {param.name} required={options[param.name].get('required')} "
            f"but the argument {'has' if has_default else 'has no'} default"
        )
    positional = [p.strip() for p in str(documentation.get("positional", "")).split(",") if p.strip()]
    assert positional == [p.name for p in params]


def test_no_doc_file_without_a_filter_and_no_shared_doc_in_code() -> None:
    orphans = sorted(p.stem for p in FILTER_DIR.glob("*.yml") if p.stem not in FILTERS)
    assert not orphans, f"doc files without a filter: {orphans}"
    for path in FILTER_DIR.glob("*.py"):
        assert "DOCUMENTATION" not in path.read_text(), f"{path.name} carries a DOCUMENTATION shared by its filters"


def test_ansible_doc_shows_each_filter_its_own_doc() -> None:
    ansible_doc = Path(sys.executable).parent / "ansible-doc"
    if not ansible_doc.exists():
        pytest.skip(f"no ansible-doc beside {sys.executable}")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"))
    names = [f"gpufleet.vllm.{name}" for name in sorted(FILTERS)]
    result = subprocess.run(
        [str(ansible_doc), "-t", "filter", "--json", *names],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    for name in names:
        short = name.rsplit(".", 1)[1]
        assert shown[name]["doc"]["name"] == short
        assert shown[name]["doc"]["filename"].endswith(f"/plugins/filter/{short}.yml")
