"""`genlab precision`: the floating-point formats of deep learning, and why float16 training needs care.

Every number printed is computed here, live, by PyTorch: the limits come from `torch.finfo`, the outcomes from
doing the arithmetic in each format.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
# The names the course (and IEEE 754's "half/single/double precision") uses; bfloat16 ("brain float", from Google
# Brain) has no IEEE name, so it keeps its own.
LESSON_NAMES = {"float16": "half", "bfloat16": "bfloat16", "float32": "single", "float64": "double"}


def named(name: str) -> str:
    """`float16 (half)`: the dtype with the name the lesson uses, where it has another one."""
    other = LESSON_NAMES[name]
    return name if other == name else f"{name} ({other})"


@dataclass
class FormatLimits:
    name: str
    bits: int
    max: float
    smallest_normal: float
    smallest_subnormal: float
    eps: float
    lesson_name: str = ""


def format_limits(name: str) -> FormatLimits:
    info = torch.finfo(DTYPES[name])
    # The smallest subnormal is the smallest normal shifted right by the mantissa's bits: tiny * eps.
    subnormal = info.smallest_normal * info.eps
    return FormatLimits(name, info.bits, info.max, info.smallest_normal, subnormal, info.eps, LESSON_NAMES[name])


def as_format(value: float, name: str) -> float:
    """`value` rounded to the format `name` (then read back as a Python float)."""
    return torch.tensor(value, dtype=torch.float64).to(DTYPES[name]).item()


def sgd_update(weight: float, lr: float, grad: float, name: str) -> float:
    """One SGD step w - lr * grad done entirely in the format `name`."""
    dtype = DTYPES[name]
    w, g = torch.tensor(weight, dtype=dtype), torch.tensor(grad, dtype=dtype)
    return (w - torch.tensor(lr, dtype=dtype) * g).item()


def repeated_updates(weight: float, update: float, steps: int, name: str) -> float:
    """`steps` SGD steps of size `update`, accumulated in the format `name` (as a weight would be)."""
    dtype = DTYPES[name]
    w, step = torch.tensor(weight, dtype=dtype), torch.tensor(update, dtype=dtype)
    for _ in range(steps):
        w = w - step
    return w.item()


def loss_scaling(grad: float, scale: float) -> tuple[float, float, float]:
    """(the gradient stored in float16, the scaled gradient stored in float16, unscaled again in float32)."""
    plain = as_format(grad, "float16")
    scaled = torch.tensor(grad * scale, dtype=torch.float16)
    return plain, scaled.item(), (scaled.float() / scale).item()


def lesson() -> dict:
    """All the demonstrated outcomes, as numbers (what `main` prints and the tests check), computed with IEEE
    subnormals even in a process where genlab has turned on flush-to-zero for speed."""
    from genlab.runtime import ieee_subnormals

    with ieee_subnormals():
        return _lesson()


def _lesson() -> dict:
    names = list(DTYPES)
    return {
        "limits": [format_limits(n) for n in names],
        "tiny_update": {n: sgd_update(1.0, 1e-3, 1e-5, n) for n in names},
        "small_update": {n: sgd_update(1.0, 1e-3, 1e-4, n) for n in names},
        "accumulated": {n: repeated_updates(1.0, 1e-4, 1000, n) for n in names},
        "underflow": loss_scaling(1e-8, 2.0**16),
        "overflow": {"65504": as_format(65504.0, "float16"), "65520": as_format(65520.0, "float16"),
                     "65504 * 2": (torch.tensor(65504.0, dtype=torch.float16) * 2).item()},
        "range": {n: as_format(1e38, n) for n in ("float16", "bfloat16", "float32")},
        "digits": {n: as_format(3.14159265358979, n) for n in names},
    }


def _changed(value: float, start: float = 1.0) -> str:
    return "unchanged (the update was rounded away)" if value == start else f"changed to {value!r}"


def report() -> str:
    """The printed lesson. Computed *and formatted* with IEEE subnormals: under flush-to-zero even Python's own
    float arithmetic and printing read a subnormal as 0."""
    from genlab.runtime import ieee_subnormals

    with ieee_subnormals():
        return _report(_lesson())


def _report(r: dict) -> str:
    lines = ["Floating-point formats (torch.finfo)", "",
             f"{'format':<9} {'bits':>4} {'largest':>12} {'smallest normal':>16} {'smallest subnormal':>19} "
             f"{'machine eps':>12}  called"]
    for f in r["limits"]:
        lines.append(f"{f.name:<9} {f.bits:>4} {f.max:>12.5g} {f.smallest_normal:>16.5g} "
                     f"{f.smallest_subnormal:>19.5g} {f.eps:>12.5g}  {f.lesson_name}")
    lines += ["", "half, single and double precision are IEEE 754's names for float16, float32 and float64; "
              "bfloat16 (\"brain float\") is float32's 8-bit exponent with a 7-bit mantissa."]
    lines += ["", "1. Tiny updates vanish (half loses what single keeps): w = 1.0, w -= lr * grad, computed in each format"]
    lines += ["   lr = 1e-3, grad = 1e-5 (update 1e-8):"]
    lines += [f"     {named(n):<16} {_changed(v)}" for n, v in r["tiny_update"].items()]
    lines += ["   An update is lost when it is below half the spacing of numbers near w (eps/2 at 1.0): 1e-8 is "
              "below it in every format but float64 (float32's eps/2 is 6e-8).",
              "   lr = 1e-3, grad = 1e-4 (update 1e-7):"]
    lines += [f"     {named(n):<16} {_changed(v)}" for n, v in r["small_update"].items()]
    lines += ["   1,000 updates of 1e-4 each, accumulated in the weight's own format (should reach 0.9):"]
    lines += [f"     {named(n):<16} {v!r}" for n, v in r["accumulated"].items()]
    lines += ["   Hence mixed precision keeps a float32 master copy of the weights and applies updates there."]
    plain, scaled, unscaled = r["underflow"]
    lines += ["", "2. Small gradients underflow: a gradient of 1e-8",
              f"   stored in float16:                             {plain!r}",
              f"   loss scaled by 2^16 first, stored in float16:  {scaled!r}",
              f"   unscaled in float32 before the update:         {unscaled!r}",
              "   Hence loss scaling (16-mixed's GradScaler): scale the loss up, unscale the gradients in float32."]
    o = r["overflow"]
    lines += ["", "3. float16 (half) overflows past 65504",
              f"   65504 -> {o['65504']!r};  65520 -> {o['65520']!r};  65504 * 2 -> {o['65504 * 2']!r}"]
    lines += ["", "4. bfloat16 keeps float32's (single's) range with fewer digits",
              "   1e38 stored as: " + ";  ".join(f"{named(n)} {v!r}" for n, v in r["range"].items()),
              "   pi stored as:   " + ";  ".join(f"{named(n)} {v!r}" for n, v in r["digits"].items()),
              "   bfloat16 rarely overflows (no loss scaling needed) but carries only ~3 significant digits."]
    return "\n".join(lines)
