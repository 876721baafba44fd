"""scripts/prices_check.py catches what it says it catches (run by `make test`)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import unittest

import prices_check

TODAY = dt.date(2026, 11, 30)


def table() -> dict:
    return json.loads(prices_check.TABLE.read_text())


class PricesCheck(unittest.TestCase):
    def errors(self, t: dict) -> list[str]:
        return prices_check.problems(t, TODAY)[0]

    def assert_caught(self, change, says: str) -> None:
        t = copy.deepcopy(table())
        change(t)
        errors = self.errors(t)
        self.assertTrue(any(says in e for e in errors), f"{says!r} not in {errors}")

    def test_the_table_in_the_repository_passes(self) -> None:
        self.assertEqual(self.errors(table()), [])

    def test_a_stale_reading_is_a_warning_not_an_error(self) -> None:
        errors, warnings = prices_check.problems(table(), dt.date(2031, 1, 1))
        self.assertEqual(errors, [])
        self.assertTrue(any("refresh it" in w for w in warnings), warnings)

    def test_each_mistake_is_caught(self) -> None:
        haiku = "anthropic.claude-3-haiku-20240307-v1:0"

        def model(**fields):
            def change(t):
                t["models"][haiku].update(fields)
            return change

        def remove(key):
            def change(t):
                del t["models"][haiku][key]
            return change

        cases = [
            (model(input=-1), "outside 0 to 1000"),
            (model(output=5000), "outside 0 to 1000"),
            (model(input="0.125"), "is not a number"),
            (model(input=0.0000001), "more than 6 decimals"),
            (model(regions=["mars-north-1"]), "is not a region code"),
            (model(regions=[]), "non-empty list"),
            (model(pricesOf="2025-02-30"), "not a real day"),
            (model(pricesOf="2027-01-01"), "in the future"),
            (model(pricesOf="2025-07-21"), "is not the read date"),
            (model(source="somewhere"), "is not one of sources"),
            (model(inputPrice=1), "unknown field 'inputPrice'"),
            (remove("regions"), "regions must be"),
            (lambda t: t["sources"]["aws-pricing-page-2025-07-20"].update(page="https://example.com/prices"), "aws.amazon.com"),
            (lambda t: t["sources"]["aws-pricing-page-2025-07-20"].pop("readFrom"), "readFrom"),
            (lambda t: t["unpriced"].update({haiku: "no"}), "both priced and unpriced"),
            (lambda t: t["unpriced"].update({"mistral.mistral-7b-instruct-v0:2": ""}), "say why"),
            (lambda t: t["models"].update({"not a model": t["models"][haiku]}), "not a model id"),
            (lambda t: t.update(unit="per 1,000 tokens"), "unit must be"),
        ]
        for change, says in cases:
            with self.subTest(says=says):
                self.assert_caught(change, says)


if __name__ == "__main__":
    unittest.main()
