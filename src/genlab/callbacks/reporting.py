"""Reporting work (samples, figures, quality scores) that must never cost a run.

A picture or a table is worth less than the training it describes: when making or writing one fails, the run
goes on, and the failure is said once (one `genlab warning:` line per kind of report), not at every validation.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager


@contextmanager
def never_fatal(owner, what: str):
    """Run a block that only reports; an exception in it becomes one warning per `owner` and `what`."""
    try:
        yield
    except Exception as err:  # noqa: BLE001  (any failure of a report, by design; KeyboardInterrupt passes)
        said = owner.__dict__.setdefault("_genlab_report_failures", set())
        if what not in said:
            said.add(what)
            detail = " ".join(str(err).split()) or type(err).__name__
            warnings.warn(f"{what} failed, training goes on without them ({type(err).__name__}: {detail}); "
                          f"said once per run", UserWarning, stacklevel=3)
