"""`genlab precision`: half (float16), bfloat16, single (float32) and double (float64) limits and why float16 training needs care.

The lesson itself (every number computed live by PyTorch) is genlab.float_formats; this parses the arguments first,
so `--help` answers before torch is imported, and never imports Lightning.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="genlab precision",
        description="The floating-point formats of deep learning (half = float16, bfloat16, single = float32, "
                    "double = float64), and why float16 training needs care: the "
                    "limits from torch.finfo, and the outcomes of doing the arithmetic in each format.",
    ).parse_args(argv)
    from genlab.float_formats import report

    print(report())
    return 0
