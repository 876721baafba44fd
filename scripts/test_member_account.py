"""member-account/template.yaml: a template service-managed StackSets can deploy
(no transform, no macro, no local artifact), whose reader role trusts the hub's
function role alone and may read batch jobs (stop one only with SlackActions),
and whose rule forwards Bedrock's batch events to the hub's bus with a role.
Deployed for real to an organizational unit, in two regions, through moto's
CloudFormation StackSets (service-managed). Run by `make unit`.
"""

from __future__ import annotations

import ast
import json
import unittest
from pathlib import Path

import boto3
from moto import mock_aws
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
MEMBER = ROOT / "member-account" / "template.yaml"
HUB = ROOT / "template.yaml"

HUB_ACCOUNT = "111111111111"
HUB_ROLE = f"arn:aws:iam::{HUB_ACCOUNT}:role/bbm-MonitorFunctionRole-0123ABCD"
HUB_BUS = f"arn:aws:events:us-east-1:{HUB_ACCOUNT}:event-bus/bbm-member-events"
REGIONS = ["us-east-1", "us-west-2"]
# Plain CloudFormation types that need nothing uploaded.
PLAIN_TYPES = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::Events::Rule"}


def template(path: Path = MEMBER) -> dict:
    return yaml_parse(path.read_text())


def keys_anywhere(node) -> set[str]:
    """Every mapping key in a parsed template, at any depth."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            found.add(k)
            found |= keys_anywhere(v)
    elif isinstance(node, list):
        for item in node:
            found |= keys_anywhere(item)
    return found


def strings_anywhere(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings_anywhere(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings_anywhere(v)]
    return []


def macro_problems(t: dict) -> list[str]:
    """What a service-managed StackSet would refuse, or could not upload."""
    out = []
    if "Transform" in t:
        out.append(f"Transform: {t['Transform']}")
    if "Fn::Transform" in keys_anywhere(t):
        out.append("Fn::Transform")
    if "AWS::Include" in strings_anywhere(t):
        out.append("AWS::Include")
    for name, r in t.get("Resources", {}).items():
        if r.get("Type") not in PLAIN_TYPES:
            out.append(f"{name}: {r.get('Type')} (not a plain type that needs nothing uploaded)")
    return out


def policy_statements(t: dict):
    """(resource name, its Condition, statement) for every permission the
    member template grants, inline or attached."""
    for name, r in t["Resources"].items():
        props = r.get("Properties", {})
        docs = []
        if r["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif r["Type"] == "AWS::IAM::Policy":
            docs = [props["PolicyDocument"]]
        for doc in docs:
            for st in doc["Statement"]:
                yield name, r.get("Condition"), st


def as_list(v):
    return v if isinstance(v, list) else [v]


def value(t: dict, node, env: dict):
    """A condition's or a value's result for a stack whose parameters and
    pseudo parameters are `env`: the functions the member template's
    conditions use."""
    if isinstance(node, str):
        return node
    (fn, arg), = node.items()
    if fn == "Ref":
        return env[arg]
    if fn == "Condition":
        return value(t, t["Conditions"][arg], env)
    if fn == "Fn::Equals":
        return value(t, arg[0], env) == value(t, arg[1], env)
    if fn == "Fn::Not":
        return not value(t, arg[0], env)
    if fn == "Fn::And":
        return all(value(t, a, env) for a in arg)
    if fn == "Fn::Or":
        return any(value(t, a, env) for a in arg)
    if fn == "Fn::Select":
        return value(t, arg[1], env)[int(arg[0])]
    if fn == "Fn::Split":
        return value(t, arg[1], env).split(arg[0])
    raise AssertionError(f"no evaluation of {fn}")


def stacks(**fixed):
    """Parameters and pseudo parameters of the stacks a StackSet deploys: each
    region, in the hub's account and another, with and without the options."""
    for region in ["us-east-1", "us-west-2"]:
        for account in [HUB_ACCOUNT, "222222222222"]:
            for slack in ["true", "false"]:
                for buckets in ["", "out-a"]:
                    env = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws",
                           "RoleRegion": "us-east-1", "SlackActions": slack, "OutputBuckets": buckets,
                           "HubEventBusArn": HUB_BUS, "HubFunctionRoleArn": HUB_ROLE,
                           "MemberRoleName": "bedrock-batch-monitor-reader"}
                    env.update(fixed)
                    yield env


def created(t: dict, resource: str, env: dict) -> bool:
    condition = t["Resources"][resource].get("Condition")
    return condition is None or value(t, {"Condition": condition}, env)


class StaticTest(unittest.TestCase):
    def test_the_member_template_has_no_transform_macro_or_artifact(self):
        self.assertEqual(macro_problems(template()), [])
        # The checker sees each of them (it is not blind).
        hub = template(HUB)
        self.assertTrue(any("Transform" in p for p in macro_problems(hub)), macro_problems(hub))
        t = template()
        t["Resources"]["Inc"] = {"Type": "AWS::IAM::Role", "Properties": {
            "Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": "s3://b/k"}}}}
        self.assertEqual(sorted(macro_problems(t)), ["AWS::Include", "Fn::Transform"])

    def test_the_role_grants_no_wildcard_action_and_stops_only_with_slack_actions(self):
        # (NO_RESOURCE_TYPE: the module's actions that IAM scopes to no resource.)
        t = template()
        seen = set()
        for name, _, st in policy_statements(t):
            self.assertEqual(st["Effect"], "Allow", name)
            for action in as_list(st["Action"]):
                self.assertNotIn("*", action, f"{name}: wildcard action {action}")
                seen.add(action)
                if action == "bedrock:StopModelInvocationJob":
                    stops = [env for env in stacks() if created(t, name, env)]
                    self.assertTrue(stops, f"{name} is never created")
                    self.assertTrue(all(env["SlackActions"] == "true" for env in stops),
                                    f"{name} grants {action} without SlackActions")
            resources = as_list(st["Resource"])
            if resources == ["*"]:
                # Only actions that have no resource type in IAM (Service
                # Authorization Reference: Bedrock's list actions, Service Quotas'
                # ListServiceQuotas) take "*".
                self.assertTrue(set(as_list(st["Action"])) <= NO_RESOURCE_TYPE,
                                f"{name}: * only for the actions that have no resource type")
        self.assertTrue({"bedrock:GetModelInvocationJob", "bedrock:ListTagsForResource",
                         "bedrock:ListModelInvocationJobs", "bedrock:StopModelInvocationJob",
                         "s3:GetObject", "s3:ListBucket", "kms:Decrypt", "events:PutEvents"} <= seen, seen)
        self.assertEqual(t["Parameters"]["SlackActions"]["Default"], "false", "read only by default")

    def test_the_reader_role_trusts_the_hubs_function_role_alone(self):
        t = template()
        role = t["Resources"]["ReaderRole"]
        self.assertEqual(role["Properties"]["RoleName"], {"Ref": "MemberRoleName"})
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        self.assertEqual(len(trust), 1, trust)
        self.assertEqual(trust[0]["Principal"], {"AWS": {"Ref": "HubFunctionRoleArn"}})
        self.assertEqual(trust[0]["Action"], "sts:AssumeRole")
        # The role's name is the hub's MEMBER_ROLE_NAME by default.
        self.assertEqual(t["Parameters"]["MemberRoleName"]["Default"],
                         template(HUB)["Parameters"]["MemberRoleName"]["Default"])

    def test_the_role_is_created_in_one_region_and_the_rule_everywhere_but_the_hubs_home(self):
        t = template()
        for env in stacks():
            home = env["AWS::AccountId"] == HUB_ACCOUNT and env["AWS::Region"] == "us-east-1"
            where = f"{env['AWS::AccountId']} {env['AWS::Region']}"
            self.assertEqual(created(t, "ReaderRole", env), env["AWS::Region"] == "us-east-1", where)
            for resource in ("ForwardRule", "ForwardRole"):
                self.assertEqual(created(t, resource, env), not home, f"{resource} in {where}")
            for resource, setting in (("StopJobsPolicy", "SlackActions"), ("ManifestsPolicy", "OutputBuckets")):
                on = env[setting] not in ("", "false")
                self.assertEqual(created(t, resource, env), on and created(t, "ReaderRole", env),
                                 f"{resource} in {where} with {setting}={env[setting]!r}")

    def test_kms_decrypt_goes_through_s3_only(self):
        for name, _, st in policy_statements(template()):
            if "kms:Decrypt" in as_list(st["Action"]):
                self.assertEqual(st["Condition"], {"StringLike": {"kms:ViaService": {"Fn::Sub": "s3.*.${AWS::URLSuffix}"}}})

    def test_the_forwarding_rule_takes_what_the_hubs_rules_take(self):
        member = template()["Resources"]["ForwardRule"]["Properties"]
        hub = template(HUB)
        default_bus = hub["Resources"]["MonitorFunction"]["Properties"]["Events"]["BedrockStateChange"]
        members_bus = hub["Resources"]["MemberBedrockStateChange"]["Properties"]
        self.assertEqual(member["EventPattern"], default_bus["Properties"]["Pattern"])
        self.assertEqual(member["EventPattern"], members_bus["EventPattern"])
        self.assertNotIn("EventBusName", member, "the default bus, where Bedrock puts its events")
        target = member["Targets"][0]
        self.assertEqual(target["Arn"], {"Ref": "HubEventBusArn"})
        self.assertEqual(target["RoleArn"], {"Fn::GetAtt": ["ForwardRole", "Arn"]})
        # The hub's outputs are what the member template takes.
        self.assertIn("FunctionRoleArn", hub["Outputs"])
        self.assertIn("EventBusArn", hub["Outputs"])


def deploy(params: dict[str, str], *, in_hub_account: bool = False):
    """A service-managed StackSet of the member template, deployed to an OU of
    one new account in REGIONS; returns (account id, session in it)."""
    org = boto3.client("organizations", region_name="us-east-1")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name="ml")["OrganizationalUnit"]["Id"]
    account = org.create_account(AccountName="dev", Email="dev@example.com")["CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
    if in_hub_account:
        params = {**params, "HubEventBusArn": HUB_BUS.replace(HUB_ACCOUNT, account),
                  "HubFunctionRoleArn": HUB_ROLE.replace(HUB_ACCOUNT, account)}
    cf = boto3.client("cloudformation", region_name="us-east-1")
    cf.create_stack_set(
        StackSetName="bedrock-batch-monitor-member", TemplateBody=MEMBER.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"], PermissionModel="SERVICE_MANAGED",
        AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False})
    op = cf.create_stack_instances(StackSetName="bedrock-batch-monitor-member",
                                   DeploymentTargets={"OrganizationalUnitIds": [ou]}, Regions=REGIONS)
    status = cf.describe_stack_set_operation(StackSetName="bedrock-batch-monitor-member",
                                             OperationId=op["OperationId"])["StackSetOperation"]["Status"]
    assert status == "SUCCEEDED", status
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="test")["Credentials"]
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"])
    return account, session


def document(doc):
    """A policy document as IAM returns it: JSON text, or moto's dict (for inline
    policies its str())."""
    if not isinstance(doc, str):
        return doc
    try:
        return json.loads(doc)
    except ValueError:
        return ast.literal_eval(doc)


NO_RESOURCE_TYPE = {"bedrock:ListModelInvocationJobs", "bedrock:ListFoundationModels",
                    "servicequotas:ListServiceQuotas"}


def role_actions(iam, role: str) -> set[str]:
    """The actions the role's inline and attached policies grant."""
    docs = [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]
            for n in iam.list_role_policies(RoleName=role)["PolicyNames"]]
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        docs.append(iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"])
    actions = set()
    for doc in docs:
        doc = document(doc)
        for st in doc["Statement"]:
            actions |= set(as_list(st["Action"]))
    return actions


def rules(session, region: str) -> list[tuple[dict, list[dict]]]:
    events = session.client("events", region_name=region)
    return [(r, events.list_targets_by_rule(Rule=r["Name"])["Targets"]) for r in events.list_rules()["Rules"]]


BASE = {"HubFunctionRoleArn": HUB_ROLE, "HubEventBusArn": HUB_BUS, "RoleRegion": "us-east-1"}


@mock_aws
class StackSetTest(unittest.TestCase):
    def test_a_stackset_creates_the_role_once_and_a_forwarding_rule_in_every_region(self):
        _, session = deploy(BASE)
        iam = session.client("iam", region_name="us-east-1")
        readers = [r for r in iam.list_roles()["Roles"] if r["RoleName"] == "bedrock-batch-monitor-reader"]
        self.assertEqual(len(readers), 1)
        trust = document(readers[0]["AssumeRolePolicyDocument"])
        self.assertEqual([s["Principal"] for s in trust["Statement"]], [{"AWS": HUB_ROLE}])
        self.assertEqual(role_actions(iam, "bedrock-batch-monitor-reader"), {
            "bedrock:GetModelInvocationJob", "bedrock:ListTagsForResource", "bedrock:ListModelInvocationJobs",
            "servicequotas:ListServiceQuotas", "bedrock:ListFoundationModels"})
        for region in REGIONS:
            found = rules(session, region)
            self.assertEqual(len(found), 1, f"{region}: {found}")
            rule, targets = found[0]
            self.assertEqual(json.loads(rule["EventPattern"]), {
                "source": ["aws.bedrock"], "detail-type": ["Batch Inference Job State Change"]})
            self.assertEqual([t["Arn"] for t in targets], [HUB_BUS], region)
            self.assertTrue(targets[0].get("RoleArn"), f"{region}: a bus target in another account needs a role")

    def test_slack_actions_and_output_buckets_add_stop_and_the_manifests(self):
        _, session = deploy({**BASE, "SlackActions": "true", "OutputBuckets": "out-a,out-b"})
        iam = session.client("iam", region_name="us-east-1")
        actions = role_actions(iam, "bedrock-batch-monitor-reader")
        self.assertIn("bedrock:StopModelInvocationJob", actions)
        self.assertTrue({"s3:GetObject", "s3:ListBucket", "kms:Decrypt"} <= actions, actions)

    def test_in_the_hubs_own_account_and_region_nothing_is_forwarded_twice(self):
        _, session = deploy(BASE, in_hub_account=True)
        self.assertEqual(rules(session, "us-east-1"), [], "the hub's default-bus rule has these already")
        found = rules(session, "us-west-2")
        self.assertEqual(len(found), 1, "another region of the hub's account still forwards")


if __name__ == "__main__":
    unittest.main()
