"""The errors a user can fix.

A :class:`UserError` (or a ``ValueError``/``KeyError``/``OSError`` that
reaches a command's top) is bad input: a file, value or plugin the message
names, with the fix. The commands' runner (``run_command``, above this module) prints it
as one line and exits with status 2 (:func:`report`); anything else is a bug in vggkit or
a plugin and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Any, Optional

#: exit status of a usage or data error (argparse's own for a bad argument)
USAGE_ERROR = 2


class UserError(Exception):
    """Bad input: the message names the file, value or plugin at fault and the fix."""


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]  # str(KeyError) wraps the message in quotes
    return " ".join(str(exc).split()) or type(exc).__name__


def user_error(exc: BaseException) -> Optional[BaseException]:
    """The user-fixable error behind ``exc``, or None when ``exc`` is a bug.

    A :class:`UserError` or a bad image is found anywhere along the
    ``__cause__``/``__context__`` chain (mmengine and DataLoader workers
    re-raise them wrapped); the built-in input errors count only at the top,
    so a bug that merely happened while handling one keeps its traceback.
    """
    from vggkit.data.io import find_bad_image
    if isinstance(exc, (UserError, ValueError, KeyError, OSError)):
        return exc
    seen: set[int] = set()
    link: Optional[BaseException] = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, UserError):
            return link
        link = link.__cause__ or link.__context__
    return find_bad_image(exc)


def report(prog: str, exc: Any) -> int:
    """Print ``PROG: error: MESSAGE`` on one line; returns :data:`USAGE_ERROR`."""
    print(f"{prog}: error: {_message(exc) if isinstance(exc, BaseException) else exc}",
          file=sys.stderr)
    return USAGE_ERROR


def plural(count: int, noun: str, many: Optional[str] = None) -> str:
    """``count`` and ``noun`` agreeing: ``'1 class'``, ``'2 classes'``, ``'0 images'``.

    ``many``: the plural where adding 's' (or 'es' after s, x, ch, sh) is wrong.
    """
    if count == 1:
        return f"1 {noun}"
    return f"{count} {many or noun + ('es' if noun.endswith(('s', 'x', 'ch', 'sh')) else 's')}"
