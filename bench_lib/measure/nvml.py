"""NVML (nvidia-ml-py, imported as ``pynvml``), loaded lazily and shared by energy, memory and machine.

NVML does not initialise CUDA, so loading it is fork-safe; still, nothing happens until first use.
Tests replace the module with a fake through :func:`use_module`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

_state: dict[str, Any] = {"module": None, "reason": None, "loaded": False}


def use_module(module: ModuleType | None, reason: str | None = None) -> None:
    """Use ``module`` as pynvml (already initialised), or mark NVML unavailable with ``reason``."""
    _state.update(module=module, reason=reason, loaded=True)


def reset() -> None:
    _state.update(module=None, reason=None, loaded=False)


def module() -> Any | None:
    """The initialised pynvml module, or None (see :func:`unavailable_reason`)."""
    if not _state["loaded"]:
        try:
            import pynvml

            pynvml.nvmlInit()
            use_module(pynvml)
        except ImportError:
            use_module(None, "nvidia-ml-py is not installed")
        except Exception as e:  # NVMLError_LibraryNotFound on machines without the NVIDIA driver
            use_module(None, f"NVML did not initialise: {type(e).__name__}: {e}".rstrip(": "))
    return _state["module"]


def unavailable_reason() -> str | None:
    return None if module() is not None else _state["reason"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def handle_for_cuda_device(index: int) -> Any | None:
    """NVML handle of CUDA device ``index``, matched by UUID (NVML and CUDA may number devices apart).

    Falls back to the same index when torch exposes no UUID. Needs CUDA initialised: call it in the
    process that measures, never in an asv parent.
    """
    nv = module()
    if nv is None:
        return None
    try:
        import torch

        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    except Exception:  # torch without CUDA, or an older torch without the uuid property
        uuid = None
    try:
        if uuid is not None:
            wanted = "GPU-" + str(uuid).removeprefix("GPU-")
            for i in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                if _text(nv.nvmlDeviceGetUUID(handle)) == wanted:
                    return handle
        return nv.nvmlDeviceGetHandleByIndex(index)
    except nv.NVMLError:
        return None


def gpu_inventory() -> list[dict[str, Any]]:
    """Name, memory, clocks and clock-event (throttle) reasons of every GPU NVML sees; [] without NVML."""
    nv = module()
    if nv is None:
        return []
    gpus = []
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        info: dict[str, Any] = {"nvml_index": i, "name": _text(nv.nvmlDeviceGetName(h))}
        for key, call in (
            ("uuid", lambda h=h: _text(nv.nvmlDeviceGetUUID(h))),
            ("memory_total_bytes", lambda h=h: int(nv.nvmlDeviceGetMemoryInfo(h).total)),
            ("sm_clock_mhz", lambda h=h: int(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
            ("sm_clock_max_mhz", lambda h=h: int(nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM))),
            ("power_limit_w", lambda h=h: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3),
            ("clock_event_reasons", lambda h=h: clock_event_reasons(h)),
        ):
            try:
                info[key] = call()
            except Exception:
                info[key] = None
        gpus.append(info)
    return gpus


def clock_event_reasons(handle: Any) -> int:
    """Bitmask of why clocks are held down (power cap 0x4, HW slowdown 0x8, thermal 0x20/0x40).

    ``nvmlDeviceGetCurrentClocksEventReasons`` arrived with R535; older drivers have only the
    deprecated ``…ThrottleReasons``.
    """
    nv = module()
    try:
        return int(nv.nvmlDeviceGetCurrentClocksEventReasons(handle))
    except (AttributeError, nv.NVMLError_FunctionNotFound):
        return int(nv.nvmlDeviceGetCurrentClocksThrottleReasons(handle))


def driver_version() -> str | None:
    nv = module()
    if nv is None:
        return None
    try:
        return _text(nv.nvmlSystemGetDriverVersion())
    except Exception:
        return None
