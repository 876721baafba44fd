"""The bill's arithmetic (scripts/cost.py) on fixed figures: run by `make unit`."""

from __future__ import annotations

import math
import unittest

import cost

POLL = {"n": 1000, "seconds": 0.4, "bedrock_requests": 1, "read_units": 20.0, "write_units": 1,
        "sns_publishes": 0, "log_bytes": 2000, "log_lines": 1}


class BillTest(unittest.TestCase):
    def test_a_month_of_one_minute_polls(self):
        b = cost.bill(POLL, 1)
        polls = 43_200  # 30 days of minutes
        self.assertTrue(math.isclose(b["Lambda requests"], (polls + 30) * 0.20 / 1e6))
        self.assertTrue(math.isclose(b["Lambda GB-s"], polls * 0.4 * 0.25 * 0.0000133334))
        self.assertTrue(math.isclose(b["DynamoDB reads"], polls * 20 * 0.125 / 1e6))
        self.assertTrue(math.isclose(b["DynamoDB writes"], polls * 1 * 0.625 / 1e6))
        self.assertTrue(math.isclose(b["SNS publishes"], 30 * 0.50 / 1e6), "the digests only")
        self.assertTrue(math.isclose(b["Logs ingestion and storage"], polls * 2000 / 1e9 * (0.50 + 0.03)))
        self.assertTrue(math.isclose(b["Scheduler"], (polls + 30) / 1e6))
        self.assertAlmostEqual(b["Custom metrics"], 10 * 0.30)
        self.assertAlmostEqual(b["Alarms"], 8 * 0.10)
        self.assertEqual(b["Dashboard"], 3.00)
        # The figures of the numbers above, by hand: GB-s $0.0576, reads $0.108, writes $0.027.
        self.assertAlmostEqual(b["Lambda GB-s"], 0.0576, places=4)
        self.assertAlmostEqual(b["DynamoDB reads"], 0.108, places=6)
        self.assertAlmostEqual(b["DynamoDB writes"], 0.027, places=6)

    def test_five_minute_polls_cost_a_fifth_of_the_polling(self):
        one, five = cost.bill(POLL, 1), cost.bill(POLL, 5)
        for k in ("Lambda GB-s", "DynamoDB reads", "DynamoDB writes"):
            self.assertTrue(math.isclose(five[k] * 5, one[k]), k)
        self.assertEqual(five["Dashboard"], one["Dashboard"])

    def test_full_metrics_cost_more_than_lean(self):
        self.assertAlmostEqual(cost.bill(POLL, 5, "full")["Custom metrics"], 24 * 0.30)

    def test_the_work_total_leaves_out_what_watches_the_monitor(self):
        b = cost.bill(POLL, 1)
        self.assertTrue(math.isclose(cost.work_total(b), sum(b[k] for k in cost.WORK)))
        self.assertNotIn("Custom metrics", cost.WORK)
        self.assertLess(cost.work_total(b), sum(b.values()))

    def test_the_page_section_is_generated_between_its_markers(self):
        text = cost.render({"measured": "2026-01-01", "polls": [POLL]}, 1)
        self.assertTrue(text.startswith(cost.BEGIN) and text.endswith(cost.END))
        self.assertIn("one poll a minute (the default)", text)
        self.assertIn("one poll every 5 minutes, ", text)
        self.assertIn(cost.PRICES_AS_OF, text)


if __name__ == "__main__":
    unittest.main()
