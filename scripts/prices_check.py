"""Checks prices/bedrock-batch.json, the batch price table built into the function.

Offline, with the standard library: the shape; every price (USD per million
tokens, 0 to 1,000, at most 6 decimals), region code and model id; that every
date is a real day and not in the future; that each model's `pricesOf` is the
`read` date of the source it names; that each source names an aws.amazon.com
page and where it was read (an https address); and that no model is both
priced and unpriced. It prints the age of the oldest reading and warns when
one is older than STALE_DAYS (a warning, not a failure: a table goes stale
with time, not with a change; docs/notifications.md says how to refresh it).

The Rust side reads the same file with the same rules (src/prices.rs) and
refuses to build a function from a table it cannot read.

Usage: python scripts/prices_check.py [--table prices/bedrock-batch.json] [--today YYYY-MM-DD]"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "prices" / "bedrock-batch.json"
STALE_DAYS = 180
MAX_PRICE = 1000
TOP_FIELDS = {"about", "currency", "unit", "sources", "models", "unpriced"}
MODEL_FIELDS = {"name", "input", "output", "regions", "pricesOf", "source", "note"}
SOURCE_FIELDS = {"page", "readFrom", "read", "note"}
# Region codes as the partitions name them (us-east-1, eu-central-2, ap-southeast-3,
# us-gov-west-1, cn-north-1, ...).
REGION = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov)-[a-z]+-\d$")
# A model id: <provider>.<name>, no spaces (https://docs.aws.amazon.com/bedrock/latest/userguide/models-supported.html).
MODEL_ID = re.compile(r"^[a-z0-9-]+\.[A-Za-z0-9.:_-]+$")


def problems(table: object, today: dt.date) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a parsed table."""
    errors: list[str] = []
    warnings: list[str] = []
    if not isinstance(table, dict):
        return ["the table is not a JSON object"], warnings
    for k in sorted(set(table) - TOP_FIELDS):
        errors.append(f"unknown top-level field {k!r}")
    for k in ("currency", "unit", "sources", "models", "unpriced"):
        if k not in table:
            errors.append(f"{k!r} is missing")
    if table.get("currency") != "USD":
        errors.append("currency must be USD")
    if table.get("unit") != "per million tokens":
        errors.append("unit must be 'per million tokens'")

    def date(where: str, text: object) -> dt.date | None:
        if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            errors.append(f"{where}: {text!r} is not a date (YYYY-MM-DD)")
            return None
        try:
            d = dt.date.fromisoformat(text)
        except ValueError:
            errors.append(f"{where}: {text} is not a real day")
            return None
        if d > today:
            errors.append(f"{where}: {text} is in the future")
        return d

    sources = table.get("sources") or {}
    read: dict[str, str] = {}
    if not isinstance(sources, dict) or not sources:
        errors.append("sources must be a non-empty object")
        sources = {}
    for name, src in sources.items():
        where = f"sources.{name}"
        if not isinstance(src, dict):
            errors.append(f"{where}: not an object")
            continue
        for k in sorted(set(src) - SOURCE_FIELDS):
            errors.append(f"{where}: unknown field {k!r}")
        page = src.get("page")
        if not isinstance(page, str) or not re.match(r"^https://aws\.amazon\.com/", page):
            errors.append(f"{where}: page must be an https://aws.amazon.com/ address, is {page!r}")
        frm = src.get("readFrom")
        if not isinstance(frm, str) or not frm.startswith("https://"):
            errors.append(f"{where}: readFrom must be the https address the prices were read from, is {frm!r}")
        d = date(f"{where}.read", src.get("read"))
        if d is not None:
            read[name] = src["read"]
            age = (today - d).days
            if age > STALE_DAYS:
                warnings.append(f"{where} was read {age} days ago ({src['read']}): refresh it (docs/notifications.md, 'Keeping it true')")

    models = table.get("models") or {}
    if not isinstance(models, dict) or not models:
        errors.append("models must be a non-empty object")
        models = {}
    for model_id, entry in models.items():
        where = f"models.{model_id}"
        if not MODEL_ID.match(model_id):
            errors.append(f"{where}: not a model id")
        if not isinstance(entry, dict):
            errors.append(f"{where}: not an object")
            continue
        for k in sorted(set(entry) - MODEL_FIELDS):
            errors.append(f"{where}: unknown field {k!r}")
        for k in ("input", "output"):
            v = entry.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                errors.append(f"{where}.{k}: {v!r} is not a number")
            elif not 0 <= v <= MAX_PRICE:
                errors.append(f"{where}.{k}: {v} is outside 0 to {MAX_PRICE} USD per million tokens")
            elif abs(v * 1_000_000 - round(v * 1_000_000)) > 1e-3:
                errors.append(f"{where}.{k}: {v} has more than 6 decimals")
        regions = entry.get("regions")
        if not isinstance(regions, list) or not regions:
            errors.append(f"{where}.regions must be a non-empty list")
        else:
            for r in regions:
                if not isinstance(r, str) or not REGION.match(r):
                    errors.append(f"{where}.regions: {r!r} is not a region code")
        date(f"{where}.pricesOf", entry.get("pricesOf"))
        src = entry.get("source")
        if src not in sources:
            errors.append(f"{where}.source: {src!r} is not one of sources")
        elif read.get(src) != entry.get("pricesOf"):
            errors.append(f"{where}.pricesOf {entry.get('pricesOf')!r} is not the read date of {src} ({read.get(src)!r})")

    unpriced = table.get("unpriced") or {}
    if not isinstance(unpriced, dict):
        errors.append("unpriced must be an object of model ids to the reason")
        unpriced = {}
    for model_id, why in unpriced.items():
        if not MODEL_ID.match(model_id):
            errors.append(f"unpriced.{model_id}: not a model id")
        if not isinstance(why, str) or not why.strip():
            errors.append(f"unpriced.{model_id}: say why it has no price")
        if model_id in models:
            errors.append(f"{model_id} is both priced and unpriced")
    return errors, warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date.today())
    args = parser.parse_args()
    try:
        table = json.loads(args.table.read_text())
    except (OSError, ValueError) as e:
        print(f"{args.table}: {e}", file=sys.stderr)
        return 1
    errors, warnings = problems(table, args.today)
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        print(f"{args.table}: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    oldest = min(dt.date.fromisoformat(s["read"]) for s in table["sources"].values())
    print(
        f"{args.table.relative_to(ROOT) if args.table.is_relative_to(ROOT) else args.table}: "
        f"{len(table['models'])} models priced, {len(table['unpriced'])} listed without a price, "
        f"{len(table['sources'])} sources; the oldest reading is {(args.today - oldest).days} days old ({oldest})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
