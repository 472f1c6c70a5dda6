"""Networks for traces that come without one."""

from __future__ import annotations

from suanli.errors import Problem, SpecError
from suanli.sim.traces import Trace
from suanli.spec.network import NetworkSpec

# A stand-in CPU for a homogeneous cluster: SWF traces give runtimes, so the hardware type only sets power
# and price, not speed.
SWF_CPU = "amd-epyc-7763"


def swf_cluster(trace: Trace) -> NetworkSpec:
    """One site with one pool sized from the SWF header (MaxNodes, MaxProcs), for a trace replayed as recorded."""
    nodes = trace.meta.get("MaxNodes")
    procs = trace.meta.get("MaxProcs") or nodes
    if not nodes or not procs:
        biggest = int(max(trace.cpus)) if len(trace) else 1
        nodes, procs = nodes or biggest, procs or biggest
        if not trace.meta.get("MaxNodes") and not trace.meta.get("MaxProcs"):
            raise SpecError(
                [
                    Problem(
                        "the SWF header names neither MaxNodes nor MaxProcs",
                        "--network",
                        accepted="a trace with those header lines, or --network FILE",
                    )
                ],
                str(trace.meta.get("source")),
                "trace",
            )
    per_node = max(1, int(procs) // int(nodes))
    return cpu_cluster(
        f"swf-{int(nodes)}x{per_node}",
        int(nodes),
        per_node,
        description="a homogeneous CPU cluster sized from the trace's header",
    )


def cpu_cluster(
    name: str,
    nodes: int,
    cpus_per_node: int,
    hardware: str = SWF_CPU,
    site_id: str = "cluster",
    memory_gb_per_node: float = 1e6,
    node_hour_cny: float = 1.0,
    description: str = "",
) -> NetworkSpec:
    """One site in Zhengzhou with one pool of identical CPU nodes (a trace's own machine, a test's cluster)."""
    return NetworkSpec.model_validate(
        {
            "name": name,
            "description": description,
            "sites": [
                {
                    "id": site_id,
                    "name": f"{name} site",
                    "kind": "supercomputing",
                    "province": "henan",
                    "city": "zhengzhou",
                    "backend": {"type": "sim"},
                    "energy": {"pue": 1.3, "tariff": "henan-ci-single-part-2026-01", "carbon": {"kg_per_kwh": 0.6058}},
                    "pools": [
                        {
                            "id": "cpu",
                            "hardware": hardware,
                            "nodes": nodes,
                            "devices_per_node": 1,
                            "cpus_per_node": cpus_per_node,
                            "memory_gb_per_node": memory_gb_per_node,
                            "price": {"node_hour_cny": node_hour_cny},
                        }
                    ],
                }
            ],
        }
    )
