"""The bill's arithmetic (scripts/cost.py) on fixed figures: run by `make unit`."""

from __future__ import annotations

import math
from pathlib import Path
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
        self.assertAlmostEqual(b["Custom metrics"], 11 * 0.30)
        self.assertAlmostEqual(b["Alarms"], 9 * 0.10)
        self.assertEqual(b["Dashboard"], 3.00)
        # The figures of the numbers above, by hand: GB-s $0.0576, reads $0.108, writes $0.027.
        self.assertAlmostEqual(b["Lambda GB-s"], 0.0576, places=4)
        self.assertAlmostEqual(b["DynamoDB reads"], 0.108, places=6)
        self.assertAlmostEqual(b["DynamoDB writes"], 0.027, places=6)

    def test_the_record_errors_read_one_list_and_a_get_per_file_within_the_bound(self):
        big = cost.record_error_reads(3, 200 * 1024 * 1024)
        self.assertEqual((big["LIST"], big["GET"], big["bytes"]), (1, 1, 8 * 1024 * 1024))
        small = cost.record_error_reads(3, 1024 * 1024)
        self.assertEqual((small["LIST"], small["GET"], small["bytes"]), (1, 3, 3 * 1024 * 1024))
        off = cost.record_error_reads(3, 1024, max_bytes=0)
        self.assertEqual((off["LIST"], off["GET"], off["bytes"]), (0, 0, 0))
        self.assertEqual(cost.record_error_reads(1500, 10)["LIST"], 2)

    def test_the_quota_reads_are_per_account_and_region_and_follow_their_caches(self):
        q = cost.quota_reads(1)
        # the count every 5 minutes, two listings: 8,640 polls' worth of 2
        self.assertEqual(q["ListModelInvocationJobs"], 2 * 30 * 24 * 12)
        # the limits every 6 hours: 120 times a month, 6 pages of 100 each
        self.assertEqual(q["ListFoundationModels"], 120)
        self.assertEqual(q["ListServiceQuotas"], 720)
        # a 10-minute schedule counts every poll; two pairs cost twice one
        self.assertEqual(cost.quota_reads(10)["ListModelInvocationJobs"], 2 * 30 * 24 * 6)
        self.assertEqual(cost.quota_reads(1, pairs=2)["ListServiceQuotas"], 1440)

    def test_five_minute_polls_cost_a_fifth_of_the_polling(self):
        one, five = cost.bill(POLL, 1), cost.bill(POLL, 5)
        for k in ("Lambda GB-s", "DynamoDB reads", "DynamoDB writes"):
            self.assertTrue(math.isclose(five[k] * 5, one[k]), k)
        self.assertEqual(five["Dashboard"], one["Dashboard"])

    def test_full_metrics_cost_more_than_lean(self):
        self.assertAlmostEqual(cost.bill(POLL, 5, "full")["Custom metrics"], 26 * 0.30)

    def test_the_counts_priced_should_be_the_stacks(self):
        # The alarms the template holds, and the lean metrics the function declares.
        root = Path(__file__).resolve().parent.parent
        template = (root / "template.yaml").read_text()
        self.assertEqual(cost.ALARMS, template.count("Type: AWS::CloudWatch::Alarm"))
        metrics = (root / "src" / "adapters" / "metrics.rs").read_text()
        lean = metrics.split("pub const LEAN_METRICS: [&str; ", 1)[1].split("]", 1)[0]
        self.assertEqual(cost.METRICS["lean"], int(lean))

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



SMALL = {**POLL, "n": 100, "seconds": 0.2, "read_units": 5.0, "log_bytes": 1000}


class OrganizationTest(unittest.TestCase):
    def test_a_poll_between_two_measured_sizes_is_interpolated_and_below_them_bounded(self):
        mid = cost.poll_at([SMALL, POLL], 550)
        self.assertTrue(math.isclose(mid["seconds"], 0.3))
        self.assertTrue(math.isclose(mid["read_units"], 12.5))
        self.assertEqual(cost.poll_at([POLL, SMALL], 50)["seconds"], 0.2, "the smallest measured, not less")
        self.assertEqual(cost.poll_at([SMALL, POLL], 1000)["seconds"], 0.4)
        with self.assertRaises(ValueError):
            cost.poll_at([SMALL, POLL], 1001)

    def test_the_hub_pays_the_fixed_part_once_and_the_members_pay_what_they_forward(self):
        example = {"accounts": 3, "regions": 2, "teams": 2, "active_jobs": 600, "jobs_a_month": 1200,
                   "events_a_job": 5}
        rows = {r["shape"]: r for r in cost.org_bills([SMALL, POLL], 1, example)}
        today = rows["a stack per account and region (today)"]
        per_stack = cost.bill(SMALL, 1)  # 600 jobs / 6 stacks = 100 each: the measured SMALL
        self.assertEqual(today["monitor stacks"], 6)
        self.assertTrue(math.isclose(today["fixed"], 6 * (3.30 + 0.90 + 3.00 + 1.00)))
        self.assertTrue(math.isclose(today["work"], 6 * cost.work_total(per_stack)))
        self.assertEqual(today["events sent to the hub (paid by the member accounts)"], 0)
        hub = rows["one hub and the member StackSet"]
        self.assertEqual((hub["monitor stacks"], hub["member stacks"]), (1, 6))
        self.assertTrue(math.isclose(hub["fixed"], 8.20))
        self.assertTrue(math.isclose(hub["work"], cost.work_total(cost.bill(cost.poll_at([SMALL, POLL], 600), 1))))
        # 6,000 events, 5 of the 6 places forward theirs: 5,000 custom events at $1 per million.
        self.assertTrue(math.isclose(hub["events sent to the hub (paid by the member accounts)"], 5000 / 1e6))
        self.assertTrue(math.isclose(hub["total"], hub["fixed"] + hub["work"] + 5000 / 1e6))
        self.assertLess(hub["total"], today["total"] / 5)
        per_team = rows["a stack per account, region and team (today, a Slack channel per team)"]
        self.assertEqual(per_team["monitor stacks"], 12)
        two_hubs = rows["a hub per team and a member StackSet each (a Slack channel per team)"]
        self.assertEqual((two_hubs["monitor stacks"], two_hubs["member stacks"]), (2, 12))
        self.assertTrue(math.isclose(two_hubs["events sent to the hub (paid by the member accounts)"], 2 * 5000 / 1e6))

    def test_the_organization_section_says_who_pays_the_events(self):
        text = cost.render_org({"measured": "2026-01-01", "polls": [SMALL, POLL]}, 1)
        self.assertTrue(text.startswith(cost.ORG_BEGIN) and text.endswith(cost.ORG_END))
        self.assertIn("**paid by the sender**", text)
        self.assertIn("https://aws.amazon.com/eventbridge/pricing/", text)
        self.assertIn("| one hub and the member StackSet | 1 | 6 |", text)
        self.assertIn("| a stack per account and region (today) | 6 | 0 |", text)


if __name__ == "__main__":
    unittest.main()
