"""The one boundary where an exception becomes one line instead of a traceback.

Every error genlab raises about the user's input or run derives from GenlabError, wherever it is defined (a
checkpoint, a data file, a config, a tool's argument, a NaN loss): the commands print it as one line,
`genlab <command>: error: <message>`, and exit with its `exit_code`. Anything else is a bug and keeps its
traceback. `user_error` is the single place that decides; an exception a library raises on bad user input is to be
translated there, so that every command says it the same way (the jsonargparse errors of a config are explained
below, for genlab's LightningCLI). Imports only the standard library, so any layer may use it.
"""

from __future__ import annotations

import difflib
import inspect
import pydoc
import re
import sys


class GenlabError(Exception):
    """A mistake in the user's input (exit status 2), or a run that failed for a reason the message explains."""

    exit_code = 2


class ConfigError(GenlabError, ValueError):
    """A config or command line that does not parse, or whose settings contradict each other."""


class RunFolderError(GenlabError, ValueError):
    """Fitting from scratch into a folder that already holds a run, which would mix the two runs' files."""


def user_error(err: BaseException) -> GenlabError | None:
    """The GenlabError behind `err` (genlab's own, also when a library wrapped it with `raise ... from`), or None
    for a bug."""
    while err is not None and not isinstance(err, GenlabError):
        err = err.__cause__
    return err


def say(command: str, err: BaseException) -> int | None:
    """Print `err` as genlab's one line for `command` and return its exit status; None (nothing printed) for a bug,
    which the caller re-raises."""
    found = user_error(err)
    if found is None:
        return None
    print(f"genlab {command}: error: {found}", file=sys.stderr)
    return found.exit_code


# jsonargparse's errors about a config or command line, said as one line by genlab's LightningCLI
TIP = "(`genlab fit -c CONFIG --print_config` lists every key and its value)"


def explain_parse_error(message: str, options: list[str]) -> str:
    """One line for a config or command-line mistake, with the closest valid key (or one of `options`, the
    command's flags) when there is one."""
    unknown = re.search(r"Option '([^']+)' is not accepted|No action for key \"([^\"]+)\"", message)
    if unknown:
        key, owner = unknown.group(1) or unknown.group(2), re.search(r"class_path '([^']+)'", message)
        names = parameters(owner.group(1)) if owner else []
        guess = difflib.get_close_matches(key.split(".")[-1], names, n=1)
        hint = f" (did you mean {guess[0]}?)" if guess else (f" (valid: {', '.join(names)})" if names else "")
        return f"unknown key {key!r}{' of ' + owner.group(1) if owner else ''}{hint} {TIP}"
    unrecognized = re.search(r"unrecognized arguments: (\S+)|does not accept option '([^']+)'", message, re.I)
    if unrecognized:
        flag = (unrecognized.group(1) or f"--{unrecognized.group(2)}").split("=")[0]
        guess = difflib.get_close_matches(flag, options, n=1, cutoff=0.75)
        return f"unknown option {flag}{f' (did you mean {guess[0]}?)' if guess else ''} {TIP}"
    lines = [line.strip() for line in message.splitlines() if line.strip()] or [message]
    # the innermost explanation is the most specific one
    detail = next((line for line in reversed(lines) if not line.startswith(("Given value", "- Expected a"))), lines[0])
    return lines[0] if detail == lines[0] else f"{lines[0]} {detail}"


def explain_instantiation_error(err: BaseException) -> str:
    """The constructor's own message of a class the config names, without jsonargparse's wrapping around it
    (which lists every Union subtype tried and the whole namespace given)."""
    lines = str(err).splitlines()
    items = [i for i, line in enumerate(lines) if line.strip().startswith("- ") and "- Expected a" not in line]
    if items:  # the last listed error, with the lines indented under it (its detail)
        depth = len(lines[items[-1]]) - len(lines[items[-1]].lstrip())
        detail = [lines[items[-1]].strip()[2:]]
        for line in lines[items[-1] + 1:]:
            if not line.strip() or len(line) - len(line.lstrip()) <= depth or line.strip().startswith("Given value"):
                break
            detail.append(line.strip())
        return " ".join(" ".join(detail).split())
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    return " ".join(str(err).split()) or type(err).__name__


def parameters(class_path: str) -> list[str]:
    """The constructor parameters of the class `class_path` names, up to Lightning's own base classes."""
    cls, names = pydoc.locate(class_path), []
    for klass in getattr(cls, "__mro__", ()):
        if klass is object or "__init__" not in vars(klass):
            continue
        names += [p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "args", "kwargs")]
        if klass.__module__.startswith(("pytorch_lightning", "lightning")):
            break
    return list(dict.fromkeys(names))
