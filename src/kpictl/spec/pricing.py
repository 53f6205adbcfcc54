"""Rules of the `pricing:` section: model prices and their aliases."""

from __future__ import annotations

from kpictl.io.pricing import ModelPrice, PricingSpec
from kpictl.spec.model import PRICE_KEYS, PRICING_KEYS, parse_timestamp, shown
from kpictl.spec.problems import Problems, section_mapping
from kpictl.spec.yamlmarks import (
    MarkedDict,
)


def build_pricing(problems: Problems, data: MarkedDict) -> PricingSpec:
    """`pricing: {models: {name: {input, output, cache_read?, cache_write?, effective_from?}
    or a list of those}, genai_prices: bool}`; prices are USD per 1M tokens."""
    node = section_mapping(problems, data, "pricing", "pricing")
    if node is None:
        return PricingSpec()
    problems.unknown_keys(node, PRICING_KEYS, "pricing")
    genai = node.get("genai_prices", False)
    if not isinstance(genai, bool):
        problems.add(node.line_of("genai_prices"), "pricing.genai_prices", "expected true/false")
        genai = False
    models = section_mapping(problems, node, "models", "pricing.models")
    prices: list[ModelPrice] = []
    aliases = _price_aliases(problems, models)
    for model, body in (models or {}).items():
        path = f"pricing.models.{model}"
        line = models.line_of(model) if models is not None else None
        entries = body if isinstance(body, list) else [body]
        seen: set[object] = set()
        for position, entry in enumerate(entries):
            epath = path if len(entries) == 1 else f"{path}[{position}]"
            eline = entry.line if isinstance(entry, MarkedDict) else line
            if not isinstance(entry, MarkedDict):
                problems.add(line, epath, "expected {input: USD per 1M tokens, output: …}")
                continue
            problems.unknown_keys(entry, PRICE_KEYS, epath)
            amounts: dict[str, float | None] = {}
            for key in ("input", "output", "cache_read", "cache_write"):
                value = entry.get(key)
                if value is None and key in ("input", "output"):
                    problems.add(eline, f"{epath}.{key}", "missing: USD per 1M tokens")
                elif value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float) or value < 0
                ):
                    problems.add(
                        entry.line_of(key),
                        f"{epath}.{key}",
                        f"expected a price ≥ 0 in USD per 1M tokens, got {shown(value)}",
                    )
                    value = None
                amounts[key] = None if value is None else float(value)
            since = None
            if entry.get("effective_from") is not None:
                try:
                    since = parse_timestamp(entry["effective_from"])
                except ValueError:
                    problems.add(
                        entry.line_of("effective_from"),
                        f"{epath}.effective_from",
                        f"expected a date such as 2025-01-01, got {entry['effective_from']!r}",
                    )
            if since in seen:
                problems.add(eline, epath, f"two prices of {model!r} take effect at {since}")
            seen.add(since)
            if amounts["input"] is None or amounts["output"] is None:
                continue
            prices.append(
                ModelPrice(
                    str(model),
                    amounts["input"],
                    amounts["output"],
                    amounts["cache_read"],
                    amounts["cache_write"],
                    since,
                    aliases.get(str(model), ()),
                )
            )
    return PricingSpec(tuple(prices), genai)


def _price_aliases(problems: Problems, models: MarkedDict | None) -> dict[str, tuple[str, ...]]:
    """`aliases: [name, …]` of each model (any of its dated entries may list them): other model
    names its prices apply to. An alias that is a listed model, or an alias of two models, is
    ambiguous and reported with its line."""
    found: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    listed = {str(m) for m in models or {}}
    for model, body in (models or {}).items():
        entries = body if isinstance(body, list) else [body]
        for position, entry in enumerate(entries):
            if not isinstance(entry, MarkedDict) or entry.get("aliases") is None:
                continue
            path = (
                f"pricing.models.{model}"
                if len(entries) == 1
                else f"pricing.models.{model}[{position}]"
            ) + ".aliases"
            line = entry.line_of("aliases")
            names = entry["aliases"]
            if not isinstance(names, list) or not all(
                isinstance(n, str) and n.strip() for n in names
            ):
                problems.add(
                    line,
                    path,
                    f"expected a list of model names such as [{model}-latest], got {shown(names)}",
                )
                continue
            for name in names:
                if name in listed:
                    problems.add(
                        line,
                        path,
                        f"{name!r} is a model of its own under "
                        "pricing.models; an alias names a model that is not listed",
                    )
                elif owner.get(name, str(model)) != str(model):
                    problems.add(
                        line,
                        path,
                        f"{name!r} is already an alias of "
                        f"{owner[name]!r}; a model name has one price",
                    )
                else:
                    owner[name] = str(model)
                    if name not in found.get(str(model), ()):
                        found[str(model)] = (*found.get(str(model), ()), name)
    return found
