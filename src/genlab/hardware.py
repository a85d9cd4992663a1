"""What the machine in front of genlab runs fast, and the settings `auto` picks for it.

The shipped configs say `precision: auto` because no single precision is right everywhere: bf16 is fast on GPUs
that support it and on CPUs with native bf16 instructions (AVX512-BF16, AMX), but on other CPUs oneDNN emulates
it and a bf16 matmul runs many times slower than float32. The rule (README, "Hardware"):

    CUDA with bf16         -> bf16-mixed   (float32's range: no loss scaling needed)
    CUDA without bf16      -> 16-mixed     (float16 with Lightning's loss scaling)
    CPU with native bf16   -> bf16-mixed
    any other CPU          -> 32-true
    Apple MPS              -> 32-true      (autocast on MPS is young and genlab has not verified it there)
    anything else          -> 32-true      (Lightning's own default)

Any precision the user names is kept as given. torch is imported inside the functions so that importing this
module (e.g. by `genlab --help`) stays cheap; Lightning is not imported at all.
"""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path

# The CPU features that decide how fast genlab's matmuls and convs run, in /proc/cpuinfo's spelling
RELEVANT_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
MIXED = ("16-mixed", "bf16-mixed", "16-true", "bf16-true", "16", "bf16", 16)


def _linux_cpu(text: str) -> tuple[str | None, set[str]]:
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.MULTILINE)
    return (model.group(1).strip() if model else None), set(flags.group(1).split() if flags else ())


def _sysctl(*names: str) -> str:
    try:
        done = subprocess.run(["sysctl", "-n", *names], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def cpu_info() -> dict:
    """{"cpu": the CPU's model name, "cpu_flags": the RELEVANT_FLAGS it has}, for every benchmark's JSON.

    Linux: /proc/cpuinfo; macOS: sysctl (Intel Macs list AVX2/AVX512F/FMA there; Apple silicon lists none of
    these x86 features); elsewhere Python's platform module, without flags.
    """
    model, flags = None, set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            model, flags = _linux_cpu(cpuinfo.read_text(errors="replace"))
        except OSError:
            pass
    elif platform.system() == "Darwin":
        model = _sysctl("machdep.cpu.brand_string").strip() or None
        features = _sysctl("machdep.cpu.features", "machdep.cpu.leaf7_features").lower().split()
        flags = {f.replace(".", "_") for f in features}
    model = model or platform.processor() or platform.machine() or "unknown"
    return {"cpu": model, "cpu_flags": [f for f in RELEVANT_FLAGS if f in flags]}


def gpu_name() -> str | None:
    """The first CUDA device's name, or None without one (the "gpu" field of benchmark JSON)."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def hardware_fields() -> dict:
    """{"cpu", "cpu_flags", "gpu"}: what every benchmark JSON carries, so that figures from different machines
    are never mixed up."""
    return {**cpu_info(), "gpu": gpu_name()}


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (x86: AVX512-BF16 or AMX-BF16; ARM: the BF16 extension).

    oneDNN's own check (torch.ops.mkldnn._is_mkldnn_bf16_supported) is not used on x86: it answers True on any
    AVX512 CPU, where oneDNN emulates bf16 at a fraction of float32's speed. torch.cpu's cpuinfo-based probes
    cover the platforms without /proc/cpuinfo.
    """
    flags = set(cpu_info()["cpu_flags"])
    if flags:  # an x86 CPU whose feature list was read
        return bool(flags & set(NATIVE_BF16_FLAGS))
    import torch

    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        try:  # on ARM oneDNN's check is the BF16 extension itself
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(probe()) for probe in probes if probe is not None)


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def device_kind(accelerator=None) -> str:
    """"cuda", "mps", "cpu" or another accelerator's lower-case name: what Lightning runs on for `accelerator`
    (a Trainer's accelerator flag: "auto", "gpu", "cpu", "cuda", "mps", ... or an Accelerator instance)."""
    import torch

    if accelerator is None:
        name = "auto"
    elif isinstance(accelerator, str):
        name = accelerator.lower()
    else:  # an Accelerator instance: CUDAAccelerator, MPSAccelerator, CPUAccelerator, ...
        name = type(accelerator).__name__.lower().removesuffix("accelerator")
    if name in ("auto", "gpu"):
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available():
            return "mps"
        return "cpu" if name == "auto" else "cuda"  # "gpu" without one: Lightning itself says what is missing
    return name


def _cuda_bf16() -> bool:
    import torch

    try:  # without including_emulation=False, GPUs that only emulate bf16 (pre-Ampere) answer True
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch before the argument existed: no emulation counted
        return bool(torch.cuda.is_bf16_supported())
    except (AssertionError, RuntimeError):  # no usable CUDA device
        return False


def resolve_precision(requested, accelerator=None) -> tuple:
    """(the Lightning precision to use, a short reason) for a Trainer's `precision` and `accelerator` flags.

    Only "auto" is resolved (see the module's rule); any other value, None included, is returned unchanged.
    """
    if not (isinstance(requested, str) and requested.lower() == "auto"):
        return requested, "set by the config or command line"
    kind = device_kind(accelerator)
    if kind == "cuda":
        if _cuda_bf16():
            return "bf16-mixed", "CUDA, bf16 supported"
        return "16-mixed", "CUDA without bf16: float16 with loss scaling"
    if kind == "cpu":
        if cpu_has_native_bf16():
            found = [f for f in cpu_info()["cpu_flags"] if f in NATIVE_BF16_FLAGS]
            return "bf16-mixed", f"CPU with native bf16{': ' + ', '.join(found) if found else ''}"
        return "32-true", "CPU without native bf16: emulated bf16 would run slower than float32"
    if kind == "mps":
        return "32-true", "Apple MPS: mixed precision not verified there by genlab"
    return "32-true", f"{kind}: no genlab rule, Lightning's default"


def _cuda_tensor_cores() -> bool:
    import torch

    try:
        return torch.cuda.get_device_capability()[0] >= 7
    except (AssertionError, RuntimeError):
        return False


def resolve_channels_last(requested, accelerator=None, precision=None) -> tuple[bool, str]:
    """(whether convolutional models keep NHWC layout, a short reason) for a model's `channels_last` flag.

    "auto": on CPUs oneDNN runs convs in NHWC without reordering (measured faster here in float32 and under
    bf16-mixed: reports/dcgan/README.md); on CUDA, NHWC is the layout tensor cores (compute capability >= 7)
    want for half-precision convs, while in float32 or on older GPUs it only adds layout conversions; on MPS
    and other devices genlab keeps the default layout. A bool given by the user is kept.
    """
    if isinstance(requested, bool):
        return requested, "set by the config or command line"
    if not (isinstance(requested, str) and requested.lower() == "auto"):
        raise ValueError(f"channels_last must be true, false or auto, got {requested!r}")
    kind = device_kind(accelerator)
    if kind == "cpu":
        return True, "CPU: oneDNN convs run faster in NHWC"
    if kind == "cuda":
        if str(precision) not in {str(p) for p in MIXED}:
            return False, "CUDA in float32: NHWC pays only with half-precision tensor cores"
        if _cuda_tensor_cores():
            return True, "CUDA tensor cores run half-precision convs fastest in NHWC"
        return False, "CUDA without tensor cores: NHWC does not pay"
    return False, f"{kind.upper() if kind == 'mps' else kind}: default layout"
