"""Import aiogram with its Bot API models built on first use instead of all at import.

``aiogram.types`` declares its ~300 pydantic models with ``defer_build=True`` and then calls
``model_rebuild()`` on every one of them at import, which builds each model's validator and
serializer with the whole graph of models it can contain inlined: about 100 MB that stay
resident, of which a router uses a handful (``Update``, ``Message``, the keyboards and the send
methods). Here that loop only collects the names it would resolve forward references with; they
are added to the namespaces of aiogram's type and method modules (what their ``TYPE_CHECKING``
imports name), so pydantic builds a model the first time it is validated or constructed, with
the same schema as before. Call :func:`import_aiogram_lazily` before anything imports aiogram;
once aiogram is imported it does nothing.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel

_MODULES = ("aiogram.types.", "aiogram.methods.")


def import_aiogram_lazily() -> None:
    """Import aiogram (if not yet imported) without building every model of the Bot API."""
    if "aiogram" in sys.modules:
        return
    names: dict[str, Any] = {}
    rebuild = BaseModel.model_rebuild.__func__  # type: ignore[attr-defined]

    def collect(cls: type[BaseModel], /, *, _types_namespace: Any = None, **options: Any) -> bool | None:
        if _types_namespace is not None and cls.__module__.startswith(_MODULES):
            names.update(_types_namespace)
            return None
        options["_parent_namespace_depth"] = options.get("_parent_namespace_depth", 2) + 1
        result: bool | None = rebuild(cls, _types_namespace=_types_namespace, **options)
        return result

    setattr(BaseModel, "model_rebuild", classmethod(collect))
    try:
        import aiogram  # noqa: F401  (aiogram/__init__ imports the types and the methods)
    finally:
        setattr(BaseModel, "model_rebuild", classmethod(rebuild))
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(_MODULES):
            namespace = vars(module)
            for name, value in names.items():
                namespace.setdefault(name, value)
