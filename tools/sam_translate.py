"""Print the CloudFormation that template.yaml becomes for given parameters, as SAM would deploy it.

Runs inside the SAM CLI's venv (its translator and language-extensions processor, which expands the
template's Fn::ForEach loops and resolves Fn::If and Fn::FindInMap first, as CloudFormation would), offline:
    .venv-sam/bin/python tools/sam_translate.py [Name=Value ...] > translated.json
Used by the tests to check what only the translated template shows (auth per method, resource
policies, the policies SAM adds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from samcli.lib.cfn_language_extensions.sam_integration import process_template_for_sam_cli
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parent.parent


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs; offline we know none (and we use none by name)."""

    def load(self) -> dict:
        return {}


def translate(overrides: dict[str, str]) -> dict:
    template = yaml_parse((ROOT / "template.yaml").read_text())
    parameters = {name: spec.get("Default", "") for name, spec in template.get("Parameters", {}).items()}
    parameters.update(overrides)
    parameters.update(
        {
            "AWS::Region": "eu-west-1",
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
            "AWS::StackName": "sms-gateway",
            "AWS::StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/sms-gateway/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        }
    )
    for name, spec in template.get("Parameters", {}).items():
        if spec.get("Type") == "CommaDelimitedList" and isinstance(parameters.get(name), str):
            parameters[name] = parameters[name].split(",") if parameters[name] else [""]
    expanded = process_template_for_sam_cli(template, parameters)
    for resource in expanded["Resources"].values():  # as `sam validate` does: local code becomes an S3 placeholder
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://local-build/{properties[key].strip('/')}"
    expanded["Transform"] = "AWS::Serverless-2016-10-31"
    return transform(expanded, parameters, _NoManagedPolicies())


if __name__ == "__main__":
    pairs = dict(arg.split("=", 1) for arg in sys.argv[1:])
    json.dump(translate(pairs), sys.stdout, indent=1, default=str)
