"""What ``model`` means here, and ``GET /v1/models``. Pure: no I/O.

``model`` chooses the chain:

* ``auto`` — the router classifies the task and walks the category's chain, with fallback;
* a category of ``configs/routing.yaml`` (``reasoning``, ``quick``, ...) — that category's
  chain, with fallback, without classifying;
* a backend key (``claude``, ``gpt``, ...) — that backend only, no fallback.

The model list is ``auto``, then the categories, then the backends, in OpenAI's list shape;
each entry carries ``uniwizard``: its kind, and for a category its description and preference
list, for a backend its provider, model and health state (with the reason when not healthy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from edge_svc.errors import bad_request
from uniwizard_client import Catalog

AUTO = "auto"
OWNER = "uniwizard"

Kind = Literal["auto", "category", "backend"]


@dataclass(frozen=True, slots=True)
class Selection:
    kind: Kind
    name: str  # the category or backend ("" for auto)

    @property
    def category(self) -> str | None:
        return self.name if self.kind == "category" else None

    @property
    def backend(self) -> str | None:
        return self.name if self.kind == "backend" else None


def known(model: str, catalog: Catalog | None) -> bool:
    return model == AUTO or (
        catalog is not None
        and (catalog.category(model) is not None or catalog.backend(model) is not None)
    )


def select(model: str, catalog: Catalog) -> Selection:
    """The chain ``model`` asks for; a 400 naming ``model`` when it is none of the three."""
    if model == AUTO:
        return Selection("auto", "")
    if catalog.category(model) is not None:
        return Selection("category", model)
    if catalog.backend(model) is not None:
        return Selection("backend", model)
    categories = ", ".join(c.name for c in catalog.categories)
    backends = ", ".join(b.key for b in catalog.backends)
    raise bad_request(
        f"model {model!r} is not auto, a category ({categories}) or a backend ({backends})",
        "model",
    )


def model_list(catalog: Catalog) -> dict[str, Any]:
    return {"object": "list", "data": model_entries(catalog)}


def model_entries(catalog: Catalog) -> list[dict[str, Any]]:
    entries = [
        _entry(
            AUTO,
            OWNER,
            kind="auto",
            description="classified by the router; that category's chain, with fallback",
            default_category=catalog.default_category,
        )
    ]
    for c in catalog.categories:
        entries.append(
            _entry(
                c.name,
                OWNER,
                kind="category",
                description=c.description,
                prefer=list(c.prefer),
                private_only=c.private_only,
            )
        )
    for b in catalog.backends:
        health = {"state": b.state, **({"reason": b.reason} if b.reason else {})}
        entries.append(
            _entry(b.key, b.provider, kind="backend", model=b.model, provider=b.provider, **health)
        )
    return entries


def _entry(model_id: str, owner: str, **uniwizard: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": 0,
        "owned_by": owner or OWNER,
        "uniwizard": uniwizard,
    }
