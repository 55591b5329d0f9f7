"""numba's ``njit`` as a typed decorator: to mypy, a compiled kernel is the function it compiles.

numba ships no type information, so ``@numba.njit`` would make every kernel (and every caller's
result) ``Any``. This wrapper changes nothing at run time: same options, same cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from numba import njit as _numba_njit

Function = TypeVar("Function", bound=Callable[..., Any])


def njit(*, cache: bool = True,
         inline: Literal["never", "always"] = "never") -> Callable[[Function], Function]:
    """``numba.njit(cache=cache, inline=inline)``, typed as returning the function it decorates.

    ``cache``: keep the compiled machine code on disk (``__pycache__`` or ``NUMBA_CACHE_DIR``);
    ``inline``: ``"always"`` inlines the kernel into its numba callers (numba's IR inlining).
    """
    decorator: Callable[[Function], Function] = _numba_njit(cache=cache, inline=inline)
    return decorator
