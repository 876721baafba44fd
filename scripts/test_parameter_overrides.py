"""Every `--parameter-overrides` example and every samconfig `parameter_overrides`
in README.md, docs/*.md and samconfig.toml, through the pinned SAM CLI's own
parser, means what the page says: each parameter exists, its value passes the
template's constraints, and a value that starts with `{` is whole JSON. Run by
`make unit`.

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


def template_parameters() -> dict:
    return yaml_parse((ROOT / "template.yaml").read_text())["Parameters"]


def commands(text: str) -> list[str]:
    """The shell commands and inline code spans that give `--parameter-overrides`
    values: fenced lines (with `\\` continuations joined) and `...` spans (which
    may run over a line break, never over a paragraph)."""
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
            if OPTION in joined:
                out.append(joined)
        else:
            prose.append(line)
    for paragraph in "\n".join(prose).split("\n\n"):
        spans = re.findall(r"`([^`]*)`", paragraph)
        out.extend(" ".join(span.split()) for span in spans if OPTION in span)
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
        if value.lstrip().startswith("{"):
            try:
                json.loads(value)
            except ValueError as e:
                out.append(f"{key}={value!r}: the JSON arrived cut ({e})")
        pattern = p.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            out.append(f"{key}={value!r}: does not match AllowedPattern {pattern}")
        allowed = p.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            out.append(f"{key}={value!r}: not one of {allowed}")
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
        params = template_parameters()
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
                self.assertEqual(problems(parsed, params), [], where)

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
