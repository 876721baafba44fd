"""Every `--parameter-overrides` example and every samconfig `parameter_overrides`
in README.md, docs/*.md and samconfig.toml, through the pinned SAM CLI's own
parser, means what the page says: each parameter exists, its value passes the
template's constraints (the template the command deploys: template.yaml, or
member-account/template.yaml or team/template.yaml when it names it; a list
parameter's allowed values item by item; a `$(...)` the shell fills in is left
to CloudFormation), and a value that starts with `{` is whole JSON. The StackSet commands (`aws cloudformation create-stack-set`, ...)
are held to the same template and to the CloudFormation API the AWS CLI is
generated from (botocore's service model): every option is one of the
operation's, and every `--parameters ParameterKey=...,ParameterValue=...` names a
parameter of member-account/template.yaml with a value it takes. Run by `make unit`.

SAM CLI parses `--parameter-overrides` (and samconfig's `parameter_overrides`)
with `samcli.cli.types.CfnParameterOverridesType.convert`: an unquoted value
ends at the first space or double quote, so `SlackFilterPolicy={"event": ...}`
arrives as `{`. No setting should need JSON there (issue 27): the filter
policies take a list of severities and events.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
import unittest
from pathlib import Path

from samcli.cli.types import CfnParameterOverridesType
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
OPTION = "--parameter-overrides"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


MEMBER_TEMPLATE = "member-account/template.yaml"


def template_parameters(path: str = "template.yaml") -> dict:
    return yaml_parse((ROOT / path).read_text())["Parameters"]


TEAM_TEMPLATE = "team/template.yaml"


def deployed_template(command: str) -> str:
    """The template a command deploys: the member or the team template when it
    names it, else the monitor's (its packaged forms included)."""
    for named in (MEMBER_TEMPLATE, TEAM_TEMPLATE):
        if named in command:
            return named
    return "template.yaml"


def commands(text: str, needle: str = OPTION) -> list[str]:
    """The shell commands and inline code spans that contain `needle` (by default
    those giving `--parameter-overrides` values): fenced lines (with `\\`
    continuations joined) and `...` spans (which may run over a line break, never
    over a paragraph)."""
    out = []
    prose = []
    fenced = False
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            pending = ""
            continue
        if fenced:
            joined = pending + line.strip()
            if joined.endswith("\\"):
                pending = joined[:-1] + " "
                continue
            pending = ""
            if needle in joined:
                out.append(joined)
        else:
            prose.append(line)
    for paragraph in "\n".join(prose).split("\n\n"):
        spans = re.findall(r"`([^`]*)`", paragraph)
        out.extend(" ".join(span.split()) for span in spans if needle in span)
    return out


def toml_blocks(text: str) -> list[str]:
    """The ```toml fenced blocks of a page."""
    return re.findall(r"```toml\n(.*?)```", text, re.S)


def samconfig_overrides(doc: dict) -> list:
    """Every `parameter_overrides` value of a samconfig document."""
    found = []
    for value in doc.values():
        if isinstance(value, dict):
            found.extend(samconfig_overrides(value))
    if "parameter_overrides" in doc:
        found.append(doc["parameter_overrides"])
    return found


def sam_parse(values) -> dict[str, str]:
    """What the pinned SAM CLI makes of `--parameter-overrides` values."""
    return CfnParameterOverridesType().convert(values, None, None)


def cli_values(command: str) -> tuple[str, list[str]]:
    """The tool (`sam` or `aws`) and the words after `--parameter-overrides`, as the
    shell gives them."""
    words = shlex.split(command, comments=True)
    at = words.index(OPTION)
    values = []
    for word in words[at + 1:]:
        if word.startswith("--"):
            break
        values.append(word)
    tool = "aws" if words[:2] == ["aws", "cloudformation"] else "sam"
    return tool, values


def parse_example(command: str) -> dict[str, str]:
    tool, values = cli_values(command)
    if tool == "aws":
        # The AWS CLI's `cloudformation deploy`: one Key=Value a word, split at the first "=".
        return dict(v.split("=", 1) for v in values)
    return sam_parse(tuple(values))


def problems(parsed: dict[str, str], params: dict) -> list[str]:
    """What is wrong with each parsed value, against the template's constraints."""
    out = []
    for key, value in parsed.items():
        p = params.get(key)
        if p is None:
            out.append(f"{key}: no such parameter")
            continue
        if re.fullmatch(r"\$\([^)]*\)", value):
            # The shell fills it in (a stack's output, read with
            # describe-stacks): CloudFormation checks it at deploy.
            continue
        if value.lstrip().startswith("{"):
            try:
                json.loads(value)
            except ValueError as e:
                out.append(f"{key}={value!r}: the JSON arrived cut ({e})")
        pattern = p.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            out.append(f"{key}={value!r}: does not match AllowedPattern {pattern}")
        allowed = p.get("AllowedValues")
        # A list parameter's AllowedValues hold for each of its items.
        items = value.split(",") if p.get("Type") == "CommaDelimitedList" else [value]
        for item in items:
            if allowed is not None and item not in [str(a) for a in allowed]:
                out.append(f"{key}={item!r}: not one of {allowed}")
        if "MaxLength" in p and len(value) > int(p["MaxLength"]):
            out.append(f"{key}: longer than {p['MaxLength']}")
        if p.get("Type") == "Number":
            try:
                n = float(value)
            except ValueError:
                out.append(f"{key}={value!r}: not a number")
                continue
            if "MinValue" in p and n < float(p["MinValue"]):
                out.append(f"{key}={value!r}: under {p['MinValue']}")
            if "MaxValue" in p and n > float(p["MaxValue"]):
                out.append(f"{key}={value!r}: over {p['MaxValue']}")
    return out


def every_example() -> list[tuple[str, object]]:
    """(where, what SAM CLI or the AWS CLI is given) for every example."""
    out: list[tuple[str, object]] = []
    for page in pages():
        text = page.read_text()
        for command in commands(text):
            _, values = cli_values(command)
            if values:
                out.append((f"{page.name}: {command}", command))
        for block in toml_blocks(text):
            for value in samconfig_overrides(tomllib.loads(block)):
                out.append((f"{page.name} (toml): {value!r}", value))
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for value in samconfig_overrides(samconfig):
        out.append((f"samconfig.toml: {value!r}", value))
    return out


class ParameterOverridesTest(unittest.TestCase):
    def test_every_example_survives_sam_clis_parser_and_the_templates_constraints(self):
        examples = every_example()
        self.assertGreaterEqual(len(examples), 8, f"is the extractor blind? {examples}")
        for where, example in examples:
            with self.subTest(where):
                parsed = parse_example(example) if isinstance(example, str) and OPTION in example \
                    else sam_parse(example)
                self.assertTrue(parsed, f"{where}: nothing parsed")
                # Every Key= the example names arrives as a parameter of its own.
                text = example if isinstance(example, str) else " ".join(map(str, example))
                named = set(re.findall(r"(?:^|[\s'\"])([A-Za-z0-9]+)=", text))
                self.assertEqual(named, set(parsed), f"{where}: {parsed}")
                params = template_parameters(deployed_template(text))
                self.assertEqual(problems(parsed, params), [], where)

    def test_a_team_stack_example_is_held_to_the_team_template(self):
        command = ("aws cloudformation deploy --template-file team/template.yaml --stack-name t "
                   "--parameter-overrides Team=search Severities=error,bogus")
        self.assertEqual(deployed_template(command), TEAM_TEMPLATE)
        parsed = parse_example(command)
        self.assertEqual(problems(parsed, template_parameters(TEAM_TEMPLATE)),
                         ["Severities='bogus': not one of ['error', 'warning', 'success', 'info']"])

    def test_a_member_stack_example_is_held_to_the_member_template(self):
        command = ("aws cloudformation deploy --template-file member-account/template.yaml --stack-name m "
                   "--parameter-overrides HubEventBusArn=arn:aws:events:us-east-1:444444444444:event-bus/b "
                   "RoleRegion=us-east-1")
        self.assertEqual(deployed_template(command), MEMBER_TEMPLATE)
        parsed = parse_example(command)
        self.assertEqual(problems(parsed, template_parameters(MEMBER_TEMPLATE)), [])
        self.assertEqual(len(problems(parsed, template_parameters())), 2, "not the monitor's parameters")

    def test_json_inside_the_overrides_arrives_cut_and_is_caught(self):
        # What docs/rollout.md recommended before issue 27: SAM CLI reads "{".
        parsed = parse_example(
            """sam deploy --parameter-overrides 'SlackFilterPolicy={"event": [{"exists": true}]}'""")
        self.assertEqual(parsed, {"SlackFilterPolicy": "{"})
        self.assertTrue(problems(parsed, template_parameters()))

    def test_a_list_of_severities_arrives_whole_and_passes(self):
        parsed = parse_example(
            "sam deploy --parameter-overrides SlackFilterPolicy=error,warning AlertEmailFilterPolicy=error")
        self.assertEqual(parsed, {"SlackFilterPolicy": "error,warning", "AlertEmailFilterPolicy": "error"})
        self.assertEqual(problems(parsed, template_parameters()), [])
        bad = {"SlackFilterPolicy": "error, warning", "AlertEmailFilterPolicy": "errors"}
        self.assertEqual(len(problems(bad, template_parameters())), 2)


# The StackSet operations the pages show, and the AWS CLI's global options.
STACKSET_OPERATIONS = {"activate-organizations-access", "create-stack-set", "update-stack-set",
                       "create-stack-instances", "update-stack-instances", "delete-stack-instances"}
CLI_GLOBAL_OPTIONS = {"--region", "--profile", "--output", "--query", "--no-cli-pager", "--debug"}
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")


def shorthand(value: str) -> dict[str, str]:
    """The AWS CLI's shorthand `Key=value,Key=value` (a comma escaped `\\,` is
    part of a value), for the flat structures the pages use."""
    out = {}
    for pair in re.split(r"(?<!\\),", value):
        key, _, val = pair.partition("=")
        out[key] = val.replace("\\,", ",")
    return out


def stackset_commands() -> list[tuple[str, str]]:
    out = []
    for page in pages():
        for command in commands(page.read_text(), "aws cloudformation "):
            words = shlex.split(command, comments=True)
            at = words.index("cloudformation")
            if at + 1 < len(words) and words[at + 1] in STACKSET_OPERATIONS:
                out.append((f"{page.name}: {command}", command))
    return out


def stackset_problems(command: str) -> list[str]:
    """What the AWS CLI would refuse in a StackSet command, or the member
    template would not take: the options against the operation's input in
    botocore's model (the AWS CLI's options are its members' names, hyphenated)."""
    from botocore import xform_name
    from botocore.session import get_session

    model = get_session().get_service_model("cloudformation")
    words = shlex.split(command, comments=True)
    at = words.index("cloudformation")
    operation = model.operation_model("".join(w.capitalize() for w in words[at + 1].split("-")))
    members = operation.input_shape.members
    options = {"--" + xform_name(name, "-"): name for name in members}
    given: dict[str, list[str]] = {}
    current = None
    for word in words[at + 2:]:
        if word.startswith("--"):
            current = word
            given[current] = []
        elif current is not None:
            given[current].append(word)
    out = []
    for option, values in given.items():
        if option in CLI_GLOBAL_OPTIONS:
            continue
        if option not in options:
            out.append(f"{option}: not an option of {operation.name}")
            continue
        shape = members[options[option]]
        if shape.type_name == "structure":
            for key in shorthand(values[0]):
                if key not in shape.members:
                    out.append(f"{option}: {key} is not one of {list(shape.members)}")
        if shape.type_name == "string" and shape.enum and values[0] not in shape.enum:
            out.append(f"{option} {values[0]}: not one of {shape.enum}")
        if option == "--capabilities":
            out.extend(f"--capabilities {v}: not one of {shape.member.enum}" for v in values
                       if v not in shape.member.enum)
        if option == "--regions":
            out.extend(f"--regions {v}: not a region" for v in values if not REGION.match(v))
        if option == "--template-body":
            path = values[0].removeprefix("file://")
            if path != MEMBER_TEMPLATE or not (ROOT / path).is_file():
                out.append(f"--template-body {values[0]}: not file://{MEMBER_TEMPLATE}")
        if option == "--parameters":
            params = template_parameters(MEMBER_TEMPLATE)
            for value in values:
                p = shorthand(value)
                key, val = p.get("ParameterKey"), p.get("ParameterValue", "")
                if key not in params:
                    out.append(f"--parameters {value}: no such parameter in {MEMBER_TEMPLATE}")
                elif not val.startswith("$"):  # a shell variable holds one of the hub's outputs
                    out.extend(problems({key: val}, params))
    for name in operation.input_shape.required_members:
        if "--" + xform_name(name, "-") not in given:
            out.append(f"{operation.name} needs --{xform_name(name, '-')}")
    return out


class StackSetCommandsTest(unittest.TestCase):
    def test_every_stackset_command_is_the_cli_s_and_takes_the_member_template_s_parameters(self):
        found = stackset_commands()
        operations = {shlex.split(c)[2] for _, c in found}
        self.assertTrue({"activate-organizations-access", "create-stack-set", "create-stack-instances"}
                        <= operations, f"is the extractor blind? {found}")
        for where, command in found:
            with self.subTest(where):
                self.assertEqual(stackset_problems(command), [], where)
        create = next(c for _, c in found if " create-stack-set " in c)
        for needed in ("--permission-model SERVICE_MANAGED", "--auto-deployment Enabled=true",
                       "CAPABILITY_NAMED_IAM", "file://member-account/template.yaml"):
            self.assertIn(needed, create)
        instances = next(c for _, c in found if " create-stack-instances " in c)
        self.assertIn("--deployment-targets OrganizationalUnitIds=", instances)
        # Every parameter the member template requires (no default) is given.
        required = {k for k, v in template_parameters(MEMBER_TEMPLATE).items() if "Default" not in v}
        given = {shorthand(w).get("ParameterKey") for w in shlex.split(create)}
        self.assertLessEqual(required, given)

    def test_the_checker_sees_what_the_cli_would_refuse(self):
        bad = ("aws cloudformation create-stack-set --stack-set-name s --template-body file://template.yaml "
               "--permission-model SERVICE_MANAGEDD --auto-deployment Enabled=true,Retain=false "
               "--capabilities CAPABILITY_IAMS --org-units ou-1 "
               "--parameters ParameterKey=RoleRegion,ParameterValue=nowhere ParameterKey=Nope,ParameterValue=1")
        self.assertEqual(len(stackset_problems(bad)), 7, stackset_problems(bad))
        self.assertEqual(stackset_problems("aws cloudformation create-stack-instances --regions us-east-1"),
                         ["CreateStackInstances needs --stack-set-name"])
        self.assertEqual(shorthand("ParameterKey=OutputBuckets,ParameterValue=a\\,b"),
                         {"ParameterKey": "OutputBuckets", "ParameterValue": "a,b"})


class GuidedTest(unittest.TestCase):
    def test_guided_asks_every_parameter_in_template_order_and_enter_keeps_each_default(self):
        # SAM CLI 1.170's `sam deploy --guided` prompts for every parameter of the
        # template, in its order, whatever its default (GuidedContext.prompt_parameters,
        # over get_template_parameters). Ask it, answering Enter every time.
        from unittest import mock

        from samcli.commands._utils.template import get_template_parameters
        from samcli.commands.deploy import guided_context

        asked = []

        def enter(text, default=None, **_):
            asked.append(text.split("Parameter ", 1)[1].strip("\x1b[0m").strip())
            return default

        params = get_template_parameters(str(ROOT / "template.yaml"))
        context = guided_context.GuidedContext.__new__(guided_context.GuidedContext)
        with mock.patch.object(guided_context, "prompt", enter):
            answers = context.prompt_parameters(params, {}, "", "")
        self.assertEqual(asked, list(template_parameters()))
        # What a first deploy needs comes first (the first interface group), then the schedules.
        self.assertEqual(asked[:3], ["AlertEmail", "SlackWorkspaceId", "SlackChannelId"])
        self.assertLess(asked.index("DigestSchedule"), asked.index("Watch"))
        # Enter keeps the template's default for each; every parameter has one.
        for key, answer in answers.items():
            self.assertEqual(str(answer["Value"]), str(params[key]["Default"]), key)


if __name__ == "__main__":
    unittest.main()
