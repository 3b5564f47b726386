"""The ray status parser on output recorded from Ray 2.60.0 (two_nodes, one_node_verbose, starting)."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.gpufleet.vllm.plugins.module_utils.ray_status import cluster_problems, parse_ray_status

DATA = Path(__file__).parent / "data" / "ray_status"


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_two_active_nodes_and_their_totals() -> None:
    status = parse_ray_status(_read("two_nodes.txt"))
    assert status["ready"] is True
    assert status["active"] == 2
    assert status["active_nodes"][0] == "node_996da14b9b59d800b8a03c5339a48b34032e103d161270643f104bb5"
    assert status["pending_nodes"] == [] and status["failures"] == []
    assert status["resources"]["CPU"] == {"used": 0.0, "total": 3.0}
    assert status["resources"]["memory"] == {"used": 0.0, "total": 45.31, "unit": "GiB"}
    assert cluster_problems(status, 2) == []
    assert cluster_problems(status, 3) == ["2 of 3 nodes are active"]


def test_verbose_output_counts_the_totals_once() -> None:
    status = parse_ray_status(_read("one_node_verbose.txt"))
    assert status["active"] == 1
    assert status["resources"]["CPU"]["total"] == 2.0
    assert status["resources"]["object_store_memory"]["unit"] == "MiB"


def test_a_head_that_is_still_starting_is_not_ready() -> None:
    status = parse_ray_status(_read("starting.txt"))
    assert status["ready"] is False and status["active"] == 0
    assert cluster_problems(status, 1) == ["the head has not published a cluster status yet"]


def test_gpus_and_grouped_nodes_and_failures() -> None:
    # The layout of two_nodes.txt with GPU hosts: ray groups identical nodes on one line.
    text = _read("two_nodes.txt").replace(
        " 1 node_996da14b9b59d800b8a03c5339a48b34032e103d161270643f104bb5\n", " 2 node_996da\n"
    ).replace(" (no failures)", " node_0aa1: NodeTerminated (ip: 10.0.0.12)").replace(
        " 0.0/3.0 CPU\n", " 0.0/3.0 CPU\n 0.0/16.0 GPU\n"
    )
    status = parse_ray_status(text)
    assert status["active"] == 3
    assert status["failures"] == ["node_0aa1: NodeTerminated (ip: 10.0.0.12)"]
    assert status["resources"]["GPU"]["total"] == 16.0
    assert cluster_problems(status, 3, 16) == []
    assert cluster_problems(status, 3, 24) == ["the cluster has 16 GPUs, 24 expected"]


def test_empty_output() -> None:
    assert parse_ray_status("")["ready"] is False
