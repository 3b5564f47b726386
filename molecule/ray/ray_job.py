"""Run from the head as the service account: one task pinned to each live Ray node.

Each task imports vLLM where it runs and reports its host, so the output shows
that every node's env can run vLLM work. Usage: python ray_job.py HEAD:PORT
"""

import json
import socket
import sys

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@ray.remote(num_cpus=1)
def where() -> list:
    import vllm

    return [socket.gethostname(), vllm.__version__]


ray.init(address=sys.argv[1], logging_level="ERROR")
nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
refs = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote() for node in nodes]
print(json.dumps(sorted(ray.get(refs, timeout=180))))
