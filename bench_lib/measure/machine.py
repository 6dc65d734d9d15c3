"""Machine fingerprint: what a result was measured on. Reads files and NVML only: never initialises CUDA."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any

import psutil
import torch

from bench_lib.measure import allocator, devices, nvml


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


# Arm's /proc/cpuinfo names no model: the implementer and part codes do (Linux's arch/arm64 cputype.h)
ARM_IMPLEMENTERS = {
    "0x41": "Arm",
    "0x42": "Broadcom",
    "0x43": "Cavium",
    "0x46": "Fujitsu",
    "0x48": "HiSilicon",
    "0x4e": "NVIDIA",
    "0x50": "APM",
    "0x51": "Qualcomm",
    "0x61": "Apple",
    "0xc0": "Ampere",
}


def cpu_model(cpuinfo: str | None = None, device_tree_model: str | None = None) -> str:
    """The CPU's name: x86's ``model name``; on Arm Linux, where cpuinfo has none, the board's device-tree
    model (if any) and each distinct core type as implementer, part, variant and revision (two Arm machines
    of other cores get other names, so other hardware ids)."""
    info = _read("/proc/cpuinfo") or "" if cpuinfo is None else cpuinfo
    m = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    if m:
        return m.group(1).strip()
    cores = _arm_cores(info)
    if cores:
        board = device_tree_model if device_tree_model is not None else _read("/sys/firmware/devicetree/base/model")
        return " ".join(filter(None, [(board or "").strip("\x00 "), " + ".join(cores)]))
    if platform.system() == "Darwin":
        import subprocess

        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def _arm_cores(cpuinfo: str) -> list[str]:
    """Each distinct Arm core type of ``cpuinfo`` with its count: ``4x Arm part 0xd0c r3p1``."""
    found: list[str] = []
    for block in cpuinfo.split("\n\n"):
        fields = dict(re.findall(r"^(CPU [a-z]+)\s*:\s*(\S+)", block, re.MULTILINE))
        if "CPU implementer" in fields and "CPU part" in fields:
            maker = ARM_IMPLEMENTERS.get(fields["CPU implementer"].lower(), f"implementer {fields['CPU implementer']}")
            variant = fields.get("CPU variant", "0x0")
            found.append(f"{maker} part {fields['CPU part']} r{int(variant, 16)}p{fields.get('CPU revision', '0')}")
    return [f"{found.count(core)}x {core}" for core in dict.fromkeys(found)]


def cache_sizes() -> dict[str, str]:
    """The CPU's cache sizes as Linux lists them for cpu0 (``L1d 48K``, ``L2 2048K``...): the roofline's levels."""
    out = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind, size = (_read(str(index / name)) for name in ("level", "type", "size"))
        if level and size:
            out[f"L{level}{'d' if kind == 'Data' else 'i' if kind == 'Instruction' else ''}"] = size
    return out


def machine_id() -> str:
    """A stable slug naming this machine in asv's results (``CONVBENCH_MACHINE`` overrides the hostname)."""
    name = os.environ.get("CONVBENCH_MACHINE") or socket.gethostname().split(".")[0]
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "machine"


IDENTITY_FIELDS = ("arch", "cpu_model", "logical_cores", "ram_gib", "gpus")  # what makes two machines the same


def hardware_id(facts: dict[str, Any]) -> str:
    """12 hex digits naming the hardware: a hash of the CPU model, architecture, logical cores, RAM in whole
    GiB (a VM's total moves by a few MiB between boots) and the sorted GPU names. Two machines with one
    name but other hardware get other ids; the same hardware keeps its id across hostnames and boots."""
    identity = {k: facts.get(k) for k in IDENTITY_FIELDS}
    identity["gpus"] = sorted(identity["gpus"] or [])
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def identity_facts(fp: dict[str, Any]) -> dict[str, Any]:
    """The facts :func:`hardware_id` hashes, from a :func:`fingerprint`."""
    return {
        "arch": fp["arch"],
        "cpu_model": fp["cpu_model"],
        "logical_cores": fp["logical_cores"],
        "ram_gib": round(fp["ram_bytes"] / 2**30),
        "gpus": [g["name"] for g in fp["gpus"]],
    }


def fingerprint() -> dict[str, Any]:
    """Hostname, OS, CPU, cores, frequency, governor, RAM, GPUs (NVML), CUDA/cuDNN, MPS, torch, oneDNN/MKL."""
    freq = psutil.cpu_freq()
    gpus = nvml.gpu_inventory()
    fp = {
        "machine_id": machine_id(),
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels' ISA: avx2, avx512, ...
        "cpu_caches": cache_sizes(),
        "physical_cores": devices.physical_cores(),
        "logical_cores": os.cpu_count(),
        "cpu_freq_mhz": round(freq.current) if freq else None,
        "cpu_freq_max_mhz": round(freq.max) if freq and freq.max else None,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "ram_bytes": psutil.virtual_memory().total,
        "gpus": gpus,
        "nvml": nvml.unavailable_reason() or "available",
        "nvidia_driver": nvml.driver_version(),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.version.cuda else None,
        "mps_built": torch.backends.mps.is_built(),
        "torch_version": torch.__version__,
        "torch_git": torch.version.git_version,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(),
        "openmp": torch.backends.openmp.is_available(),
        "python": platform.python_version(),
    }
    fp["hardware_id"] = hardware_id(identity_facts(fp))
    return fp


# what torch.__config__.show() names its math libraries by (oneDNN still calls itself MKL-DNN there)
_LIBRARIES = {
    "onednn_version": re.compile(r"MKL-DNN v(\S+)"),
    "mkl_version": re.compile(r"Math Kernel Library Version (\S+)"),
}


def torch_build() -> dict[str, Any]:
    """What an environment's torch is, beyond its release: the build (``2.13.0+cpu`` and ``2.13.0+cu130``
    are two builds of one release), its commit, its CUDA, cuDNN, oneDNN and MKL versions, and the CPU
    capability its kernels use (``ATEN_CPU_CAPABILITY`` lowers it). Reads build facts only: never
    initialises CUDA."""
    shown = torch.__config__.show()
    build = {
        "torch_version": torch.__version__,
        "torch_git": torch.version.git_version,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.version.cuda else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
    }
    for key, pattern in _LIBRARIES.items():
        found = pattern.search(shown)
        build[key] = found.group(1) if found else None
    return build


def asv_machine_info(fp: dict[str, Any] | None = None) -> dict[str, str]:
    """The entry asv's machine file wants (machine, os, arch, cpu, num_cpu, ram) plus gpu, driver, torch."""
    fp = fp or fingerprint()
    gpu_names = sorted({g["name"] for g in fp["gpus"]})
    return {
        "machine": fp["machine_id"],
        "os": fp["os"],
        "arch": fp["arch"],
        "cpu": fp["cpu_model"],
        "num_cpu": str(fp["logical_cores"]),
        "ram": str(fp["ram_bytes"]),
        "gpu": ", ".join(f"{len([g for g in fp['gpus'] if g['name'] == n])}x {n}" for n in gpu_names) or "none",
        "driver": fp["nvidia_driver"] or "none",
        "torch": fp["torch_version"],
    }


def host_settings() -> dict[str, Any]:
    """The host settings tried against between-process spread (docs/verdicts.md, "Less noise at the
    source"): some move the level and huge pages narrowed it, so each run records them. The kernel's
    transparent huge page mode, PyTorch's ``THP_MEM_ALLOC_ENABLE`` (huge pages for its CPU tensors),
    ``LD_PRELOAD`` (another allocator) and the CPUs this process may run on."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "transparent_hugepage": allocator.thp_mode(),
        "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "ld_preload": os.environ.get("LD_PRELOAD"),
        "cpu_affinity": affinity,
    }


def state() -> dict[str, Any]:
    """What can move a benchmark between runs, now: load averages, CPU frequency and governor, steal time
    so far, and per GPU (NVML, never CUDA) its SM clock, temperature and why clocks are held down."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    freq = psutil.cpu_freq()
    times = psutil.cpu_times()
    found: dict[str, Any] = {
        "load_avg_1m": load[0],
        "load_avg_5m": load[1],
        "cpu_mhz": round(freq.current, 1) if freq else None,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_steal_s": getattr(times, "steal", None),
        **host_settings(),
        "gpus": [],
    }
    nv = nvml.module()
    if nv is not None:
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                found["gpus"].append(
                    {
                        "index": i,
                        "sm_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
                        "temperature_c": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
                        "clock_event_reasons": nvml.clock_event_reasons(h),
                    }
                )
        except Exception as e:  # a state is a record, never a reason to stop a run
            found["gpus"].append({"error": f"{type(e).__name__}: {e}"})
    return found
