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


# GPU models of Alibaba's GPU cluster trace 2023 (node list `model`, pod `gpu_spec`) as catalog ids. The trace names
# A10, T4, P100, V100M16 and V100M32 (V100 with 16 or 32 GB); G2 and G3 are models it does not disclose. They stand
# in as the V100 SXM2 32GB, the trace's other 8-GPU server model: its pods run for their recorded duration wherever
# they land, so a stand-in sets only the power drawn and the price, never a runtime.
ALIBABA_GPU_MODELS: dict[str, str] = {
    "A10": "nvidia-a10",
    "T4": "nvidia-t4",
    "P100": "nvidia-p100-pcie-16gb",
    "V100M16": "nvidia-v100-sxm2-16gb",
    "V100M32": "nvidia-v100-sxm2-32gb",
}
ALIBABA_STAND_IN = "nvidia-v100-sxm2-32gb"
# Illustrative device-hour prices (CNY) for comparing policies, not quotes; CPU nodes pay per core-hour.
_ALIBABA_DEVICE_HOUR_CNY = {"A10": 3.0, "T4": 1.5, "P100": 2.0, "V100M16": 4.0, "V100M32": 5.0}
_STAND_IN_DEVICE_HOUR_CNY = 5.0
_CORE_HOUR_CNY = 0.1


def alibaba_network(
    nodes: list[dict], name: str = "alibaba-openb"
) -> tuple[NetworkSpec, dict[str, set[str]], list[str]]:
    """A network from the node list of Alibaba's GPU trace (`read_alibaba_nodes`): one site, one pool per distinct
    (GPU model, GPUs, CPUs, memory) node shape. Returns the network, the names each pool answers to in a pod's
    `gpu_spec` (pool key -> {model}), and the models that were given a stand-in (G2, G3, ...). CPU-only nodes are
    pools of `SWF_CPU` sockets (their pods run for their recorded duration: the type sets power and price only)."""
    from suanli.hardware.catalog import load_catalog

    cpu = load_catalog().get(SWF_CPU)
    shapes: dict[tuple[str, int, int, float], int] = {}
    for node in nodes:
        model = node["gpu_model"] or ""
        gpus = int(node["gpus"]) if model else 0
        key = (model, gpus, max(1, int(node["cpus"])), float(node["memory_gb"]))
        shapes[key] = shapes.get(key, 0) + 1
    pools, aliases, stand_ins = [], {}, []
    for (model, gpus, cpus, mem), count in sorted(shapes.items()):
        pool_id = f"{model.lower() or 'cpu'}-{gpus}gpu-{cpus}c-{mem:g}g".replace(".", "_")
        if model:
            hardware = ALIBABA_GPU_MODELS.get(model)
            if hardware is None:
                hardware = ALIBABA_STAND_IN
                if model not in stand_ins:
                    stand_ins.append(model)
            price = {"device_hour_cny": _ALIBABA_DEVICE_HOUR_CNY.get(model, _STAND_IN_DEVICE_HOUR_CNY)}
            per_node = gpus
        else:
            hardware = SWF_CPU
            price = {"node_hour_cny": _CORE_HOUR_CNY * cpus}
            per_node = max(1, round(cpus / (cpu.cores or cpus)))
        pools.append(
            {
                "id": pool_id,
                "hardware": hardware,
                "nodes": count,
                "devices_per_node": max(1, per_node),
                "cpus_per_node": cpus,
                "memory_gb_per_node": max(mem, 1e-3),
                "price": price,
            }
        )
        if model:
            aliases[f"alibaba/{pool_id}"] = {model}
    network = NetworkSpec.model_validate(
        {
            "name": name,
            "description": "the node list of Alibaba's GPU cluster trace 2023, one pool per node shape",
            "sites": [
                {
                    "id": "alibaba",
                    "name": "Alibaba GPU cluster (trace 2023)",
                    "kind": "intelligent",
                    "province": "henan",
                    "city": "zhengzhou",
                    "backend": {"type": "sim"},
                    "energy": {"pue": 1.3, "tariff": "henan-ci-single-part-2026-01", "carbon": {"kg_per_kwh": 0.6058}},
                    "pools": pools,
                }
            ],
        }
    )
    return network, aliases, stand_ins


def alibaba_aliases(network: NetworkSpec) -> dict[str, set[str]]:
    """For a network written by hand: the Alibaba model names each pool answers to, from its catalog hardware (so
    a pod asking for 'T4' may use an nvidia-t4 pool). Undisclosed models (G2, G3) match no such pool."""
    by_id: dict[str, set[str]] = {}
    for model, hw in ALIBABA_GPU_MODELS.items():
        by_id.setdefault(hw, set()).add(model)
    return {f"{s.id}/{p.id}": by_id[p.hardware] for s in network.sites for p in s.pools if p.hardware in by_id}
