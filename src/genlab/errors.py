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
    original = err
    while err is not None and not isinstance(err, GenlabError):
        err = err.__cause__
    return err if err is not None else library_error(original)


# Exceptions that the libraries genlab drives raise on a user's settings, matched by their message (and for
# Lightning's MisconfigurationException, by its class): each becomes a ConfigError naming the setting and the fix.
# A ValueError elsewhere is a bug and keeps its traceback, so only these exact messages are translated.
LIBRARY_MESSAGES = (
    (r"val_check_interval`? \((\d+)\) must be less than or equal to the number of the training batches \((\d+)\)",
     "trainer.val_check_interval ({0}) is more than an epoch's {1} training batches while "
     "trainer.check_val_every_n_epoch is set: validate every N steps across epochs with "
     "`--trainer.check_val_every_n_epoch null`, or set `--trainer.val_check_interval` to at most {1} (or 1.0: once "
     "an epoch)"),
    (r"`max_epochs` must be a non-negative integer or -1\. You passed in (\S+)\.",
     "trainer.max_epochs is {0}: give a number of epochs >= 1, or -1 (no limit) with `--trainer.max_time` or "
     "`--trainer.max_steps`"),
)


def library_error(err: BaseException) -> GenlabError | None:
    """A library's exception about the user's settings as a ConfigError, or None (a bug)."""
    chain = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    for found in chain:
        message = " ".join(str(found).split())
        misconfiguration = any(klass.__name__ == "MisconfigurationException" for klass in type(found).__mro__)
        for pattern, fix in LIBRARY_MESSAGES:
            match = re.search(pattern, message)
            if match and (misconfiguration or isinstance(found, ValueError)):
                return ConfigError(fix.format(*match.groups()))
        if misconfiguration:
            return ConfigError(f"a Trainer setting Lightning refuses: {message} (fix it in the config or with "
                               "`--trainer.<key> <value>`)")
    return None


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
    expected = [m.group(1) for line in lines if (m := re.match(r"- Expected a <class '(?:\w+\.)*(\w+)'>", line))]
    given = next((line.partition(":")[2].strip() for line in lines if line.startswith("Given value:")), None)
    if expected and given is not None:  # a value of the wrong type: jsonargparse's list of the types tried
        names = ", ".join("null" if name == "NoneType" else name for name in expected)
        return f"{lines[0].rstrip(':')}: {given!r} is not a valid value (expected {names}) {TIP}"
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
