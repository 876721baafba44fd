"""team/template.yaml: one team's topic, route, inbox and Slack channel on a
shared monitor. Plain CloudFormation (no transform, no macro), whose route is a
Custom::NotificationRoute served by the monitor's routes alias, whose filter
policies (expanded for a team's parameters, as CloudFormation would) let
through the team's jobs alone, and whose Stop job permission, expanded the
same way and evaluated as IAM evaluates an identity policy's Allow statements,
stops this account's jobs tagged with the team and refuses every other job.
The filter policies are evaluated by moto's SNS filter matcher (an
implementation of SNS's filter policy language independent of this project's
src/filter_policy.rs). Run by `make unit`.
"""

from __future__ import annotations

import fnmatch
import re
import unittest
from pathlib import Path

from moto.sns.utils import FilterPolicyMatcher
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEAM = ROOT / "team" / "template.yaml"
HUB = ROOT / "template.yaml"

HUB_ACCOUNT = "111111111111"
TEAM_ACCOUNT = "222222222222"
TOKEN = f"arn:aws:lambda:us-east-1:{HUB_ACCOUNT}:function:bbm-monitor:routes"
MONITOR_TOPIC = f"arn:aws:sns:us-east-1:{HUB_ACCOUNT}:bbm-AlertTopic-ABC"
PLAIN = {"AWS::KMS::Key", "AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription",
         "AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::Chatbot::CustomAction",
         "AWS::Chatbot::SlackChannelConfiguration", "Custom::NotificationRoute"}


def template(path: Path = TEAM) -> dict:
    return yaml_parse(path.read_text())


class Stack:
    """One deployment of a template: its parameters (defaults, then the given
    ones; a CommaDelimitedList becomes a list) and pseudo parameters, and the
    intrinsic functions the team template uses, evaluated as CloudFormation
    does. A resource's attribute (Fn::GetAtt) and a resource's Ref become
    placeholders naming them."""

    def __init__(self, t: dict, account: str = TEAM_ACCOUNT, region: str = "us-east-1", **params: str):
        self.t = t
        self.env: dict = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws",
                          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "team-search",
                          "AWS::NoValue": None}
        for name, p in t["Parameters"].items():
            raw = params.get(name, p.get("Default"))
            if raw is None:
                raise AssertionError(f"parameter {name} has no default and was not given")
            self.env[name] = raw.split(",") if p["Type"] == "CommaDelimitedList" else raw

    def condition(self, name: str | None) -> bool:
        return name is None or bool(self.value(self.t["Conditions"][name]))

    def created(self, resource: str) -> bool:
        return self.condition(self.t["Resources"][resource].get("Condition"))

    def value(self, node):
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Fn::", "Ref", "Condition")):
            out = {k: self.value(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not None}
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg in self.env:
                return self.env[arg]
            if arg in self.t["Resources"]:
                return f"<{arg}>"
            raise AssertionError(f"Ref to nothing: {arg}")
        if fn == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>" if isinstance(arg, list) else f"<{arg}>"
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            return self.value(arg[0]) == self.value(arg[1])
        if fn == "Fn::Not":
            return not self.value(arg[0])
        if fn == "Fn::And":
            return all(self.value(a) for a in arg)
        if fn == "Fn::Or":
            return any(self.value(a) for a in arg)
        if fn == "Fn::If":
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Fn::Select":
            return self.value(arg[1])[int(arg[0])]
        if fn == "Fn::Split":
            return self.value(arg[1]).split(arg[0])
        if fn == "Fn::Join":
            return arg[0].join(self.value(arg[1]))
        if fn == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

            def sub(m):
                key = m.group(1)
                if key in local:
                    return str(self.value(local[key]))
                return str(self.value({"Ref": key}))
            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        raise AssertionError(f"no evaluation of {fn}")

    def properties(self, resource: str) -> dict:
        return self.value(self.t["Resources"][resource]["Properties"])


def allowed(policy: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    """Whether an identity policy's Allow statements allow the request (IAM's
    evaluation for one policy without Deny statements: a statement applies when
    the action and the resource match its patterns and every condition holds;
    a condition key missing from the request fails StringEquals,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html;
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)."""
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow", st
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        ok = True
        for operator, keys in st.get("Condition", {}).items():
            assert operator == "StringEquals", f"no evaluation of {operator}"
            for key, want in keys.items():
                want = want if isinstance(want, list) else [want]
                ok = ok and context.get(key) in want
        if ok:
            return True
    return False


def job(account: str = TEAM_ACCOUNT, region: str = "us-east-1") -> str:
    return f"arn:aws:bedrock:{region}:{account}:model-invocation-job/abcdefghij12"


def attributes(**values: str) -> dict:
    """Message attributes as SNS hands them to a filter policy."""
    return {k: {"Type": "String", "Value": v} for k, v in values.items()}


class StaticTest(unittest.TestCase):
    def test_plain_cloudformation_with_the_issues_parameters(self):
        t = template()
        self.assertNotIn("Transform", t)
        kinds = {r["Type"] for r in t["Resources"].values()}
        self.assertLessEqual(kinds, PLAIN, kinds - PLAIN)
        for p in ["RouteServiceToken", "TopicArn", "Team", "Severities", "Events", "AlertEmail",
                  "SlackWorkspaceId", "SlackChannelId", "SlackActions"]:
            self.assertIn(p, t["Parameters"])
        # Lists, not JSON.
        for p in ["Severities", "Events", "EmailSeverities"]:
            self.assertEqual(t["Parameters"][p]["Type"], "CommaDelimitedList")

    def test_the_route_is_the_monitors_custom_resource_with_a_yaml_policy(self):
        t = template()
        route = t["Resources"]["Route"]
        self.assertEqual(route["Type"], "Custom::NotificationRoute")
        self.assertEqual(route["Properties"]["ServiceToken"], {"Ref": "RouteServiceToken"})
        self.assertIsInstance(route["Properties"]["FilterPolicy"], dict, "an object, never a JSON string")
        # The token is the hub's output, the alias its template names.
        hub = template(HUB)
        self.assertEqual(hub["Outputs"]["RouteServiceToken"]["Value"], {"Ref": "RoutesAlias"})
        self.assertEqual(hub["Resources"]["RoutesAlias"]["Properties"]["Name"], "routes")
        self.assertTrue(re.match(t["Parameters"]["RouteServiceToken"]["AllowedPattern"], TOKEN))

    def test_the_topic_is_named_as_the_monitors_publish_permission_admits(self):
        stack = Stack(template(), Team="search", RouteServiceToken=TOKEN, TopicArn=MONITOR_TOPIC)
        name = stack.properties("TeamTopic")["TopicName"]
        hub = template(HUB)
        statements = [s for doc in hub["Resources"]["MonitorFunction"]["Properties"]["Policies"]
                      if isinstance(doc, dict) and "Statement" in doc for s in doc["Statement"]]
        publish = next(s for s in statements if s.get("Sid") == "PublishRoutes")
        pattern = Stack(hub, account=HUB_ACCOUNT).value(publish["Resource"])
        self.assertTrue(fnmatch.fnmatchcase(f"arn:aws:sns:us-east-1:{TEAM_ACCOUNT}:{name}", pattern),
                        (name, pattern))
        # And nothing else of the team's account.
        self.assertFalse(fnmatch.fnmatchcase(f"arn:aws:sns:us-east-1:{TEAM_ACCOUNT}:orders", pattern))


class PolicyTest(unittest.TestCase):
    """The filter policies, expanded for team search, evaluated by moto's SNS."""

    def setUp(self):
        self.stack = Stack(template(), Team="search", RouteServiceToken=TOKEN, TopicArn=MONITOR_TOPIC,
                           AlertEmail="search@example.com")

    def matcher(self, resource: str) -> FilterPolicyMatcher:
        return FilterPolicyMatcher(self.stack.properties(resource)["FilterPolicy"], "MessageAttributes")

    def test_the_route_lets_through_the_teams_jobs_at_its_severities_and_its_digest(self):
        route = self.matcher("Route")
        passes = lambda **a: route.matches(attributes(**a), "{}")  # noqa: E731
        self.assertTrue(passes(team="search", severity="error", event="statusChanged"))
        self.assertTrue(passes(team="search", severity="success", event="statusChanged"))
        self.assertTrue(passes(team="search", severity="info", event="digest"))
        self.assertFalse(passes(team="ads", severity="error", event="statusChanged"), "another team's job")
        self.assertFalse(passes(severity="error", event="statusChanged"), "a job of no team")
        self.assertFalse(passes(team="ads", severity="info", event="digest"), "another team's digest")
        self.assertFalse(passes(team="search", severity="info", event="statusChanged"), "info is not listed")

    def test_the_inbox_gets_its_own_severities_of_what_the_topic_gets(self):
        self.assertTrue(self.stack.created("EmailSubscription"))
        email = self.matcher("EmailSubscription")
        self.assertEqual(self.stack.properties("EmailSubscription")["FilterPolicyScope"], "MessageAttributes")
        self.assertTrue(email.matches(attributes(team="search", severity="error", event="statusChanged"), "{}"))
        self.assertFalse(email.matches(attributes(team="search", severity="success", event="statusChanged"), "{}"))
        self.assertTrue(email.matches(attributes(team="search", severity="info", event="digest"), "{}"))

    def test_no_events_means_the_severities_alone(self):
        stack = Stack(template(), Team="search", RouteServiceToken=TOKEN, TopicArn=MONITOR_TOPIC, Events="")
        policy = stack.properties("Route")["FilterPolicy"]
        route = FilterPolicyMatcher(policy, "MessageAttributes")
        self.assertTrue(route.matches(attributes(team="search", severity="error", event="statusChanged"), "{}"))
        self.assertFalse(route.matches(attributes(team="search", severity="info", event="digest"), "{}"),
                         "no events: not even the digest")
        self.assertFalse(route.matches(attributes(team="ads", severity="error", event="statusChanged"), "{}"))


class StopTest(unittest.TestCase):
    """The team channel's Stop job permission, expanded for team search in its
    own account, evaluated for the requests the button can make."""

    def setUp(self):
        self.stack = Stack(template(), Team="search", RouteServiceToken=TOKEN, TopicArn=MONITOR_TOPIC,
                           SlackWorkspaceId="T0123", SlackChannelId="C0123")
        self.assertTrue(self.stack.created("StopTeamJobsPolicy"))
        self.policy = self.stack.properties("StopTeamJobsPolicy")["PolicyDocument"]

    def stop(self, arn: str, **tags: str) -> bool:
        context = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        return allowed(self.policy, "bedrock:StopModelInvocationJob", arn, context)

    def test_the_teams_job_is_stopped_and_another_teams_is_refused(self):
        self.assertTrue(self.stop(job(), team="search"))
        self.assertTrue(self.stop(job(region="eu-west-1"), team="search"), "any region of the account")
        self.assertFalse(self.stop(job(), team="ads"), "another team's job")
        self.assertFalse(self.stop(job(), owner="search"), "a job without the team tag")
        self.assertFalse(self.stop(job(account=HUB_ACCOUNT), team="search"), "another account's job")
        self.assertFalse(allowed(self.policy, "bedrock:CreateModelInvocationJob", job(), {"aws:ResourceTag/team": "search"}))

    def test_the_button_is_bedrocks_own_stop_on_this_accounts_jobs(self):
        action = self.stack.properties("StopJobAction")
        command = action["Definition"]["CommandText"]
        self.assertLessEqual(len(command), 100)
        self.assertTrue(command.startswith("bedrock stop-model-invocation-job "), command)
        attachment, = action["Attachments"]
        variables = attachment["Variables"]
        self.assertLessEqual(len(variables), 5)
        for name in re.findall(r"\$(\w+)", command):
            self.assertIn(name, variables)
        for name, path in variables.items():
            self.assertEqual(path, f"event.metadata.additionalContext.{name}")
        criteria = {(c["VariableName"], c["Operator"], c.get("Value")) for c in attachment["Criteria"]}
        self.assertIn(("account", "EQUALS", TEAM_ACCOUNT), criteria)
        self.assertIn(("stoppable", "EQUALS", "true"), criteria)
        channel = self.stack.properties("TeamChannel")
        self.assertEqual(channel["GuardrailPolicies"], ["<StopTeamJobsPolicy>"])
        self.assertEqual(channel["SnsTopicArns"], ["<TeamTopic>"])

    def test_without_slack_actions_the_channel_may_do_nothing(self):
        stack = Stack(template(), Team="search", RouteServiceToken=TOKEN, TopicArn=MONITOR_TOPIC,
                      SlackWorkspaceId="T0123", SlackChannelId="C0123", SlackActions="false")
        self.assertTrue(stack.created("TeamChannel"))
        self.assertFalse(stack.created("StopTeamJobsPolicy"))
        self.assertFalse(stack.created("StopJobAction"))
        self.assertNotIn("ManagedPolicyArns", stack.properties("ChannelRole"))


class CrossAccountTest(unittest.TestCase):
    def test_the_monitors_account_alone_may_publish_and_use_the_key(self):
        stack = Stack(template(), Team="search", RouteServiceToken=TOKEN, TopicArn=MONITOR_TOPIC)
        topic_policy = stack.properties("TeamTopicPolicy")["PolicyDocument"]
        principals = {s["Principal"]["AWS"] for s in topic_policy["Statement"]}
        self.assertEqual(principals, {f"arn:aws:iam::{HUB_ACCOUNT}:root"})
        key = stack.properties("TeamKey")["KeyPolicy"]
        monitor = next(s for s in key["Statement"] if s["Sid"] == "MonitorPublishes")
        self.assertEqual(monitor["Principal"]["AWS"], f"arn:aws:iam::{HUB_ACCOUNT}:root")
        self.assertEqual(monitor["Condition"], {"StringEquals": {"kms:ViaService": "sns.us-east-1.amazonaws.com"}})

    def test_the_hub_lets_its_organization_invoke_the_routes_alias_only(self):
        hub = template(HUB)
        permission = hub["Resources"]["RoutesOrganizationPermission"]
        self.assertEqual(permission["Condition"], "HasOrganizationId")
        self.assertEqual(permission["Properties"]["FunctionName"], {"Ref": "RoutesAlias"})
        self.assertEqual(permission["Properties"]["PrincipalOrgID"], {"Ref": "OrganizationId"})


if __name__ == "__main__":
    unittest.main()
