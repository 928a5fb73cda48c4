"""Read template.yaml: CloudFormation tags, intrinsic functions, and what each function needs to run.

Used by the local stack and the tests, so that tables, queues, topics, secrets, routes and function
environments all come from the template itself and cannot drift from what is deployed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(name: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {"Ref": value} if name == "Ref" else {f"Fn::{name}": value}

    return construct


for _name in (
    "Ref",
    "GetAtt",
    "Sub",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Join",
    "Select",
    "Split",
    "FindInMap",
    "ImportValue",
    "Base64",
    "GetAZs",
    "Condition",
    "Cidr",
):
    _CfnLoader.add_constructor(f"!{_name}", _tag(_name))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template with its Fn::ForEach loops expanded, as the AWS::LanguageExtensions transform would."""
    template = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with CFN tags
    return expand_for_each(template)


_FOR_EACH = "Fn::ForEach::"


def _substitute(value: Any, identifier: str, item: str) -> Any:
    """${identifier} and &{identifier} (alphanumerics only) in strings, and Ref to the identifier, become item."""
    if isinstance(value, str):
        return value.replace(f"${{{identifier}}}", item).replace(f"&{{{identifier}}}", re.sub(r"[^A-Za-z0-9]", "", item))
    if isinstance(value, list):
        return [_substitute(v, identifier, item) for v in value]
    if isinstance(value, dict):
        if value == {"Ref": identifier}:
            return item
        out = {_substitute(k, identifier, item): _substitute(v, identifier, item) for k, v in value.items()}
        if list(out) == ["Fn::Sub"] and isinstance(out["Fn::Sub"], str) and "${" not in out["Fn::Sub"]:
            return out["Fn::Sub"]  # a logical id built in the loop: `!Sub "${Name}Function"` is now a plain name
        return out
    return value


def _expand(section: dict[str, Any]) -> dict[str, Any]:
    expanded: dict[str, Any] = {}
    for key, value in section.items():
        if not key.startswith(_FOR_EACH):
            expanded[key] = value
            continue
        identifier, collection, fragment = value
        if not isinstance(collection, list):
            raise ValueError(f"{key}: the local stack expands only literal collections, not {collection}")
        for item in collection:
            for output_key, output in _expand(_substitute(fragment, identifier, str(item))).items():
                if output_key in expanded:
                    raise ValueError(f"{key} makes {output_key} twice")
                expanded[output_key] = output
    return expanded


def expand_for_each(template: dict[str, Any]) -> dict[str, Any]:
    """Expand Fn::ForEach in Conditions, Resources (and their Properties) and Outputs."""
    for section in ("Conditions", "Resources", "Outputs"):
        if section in template:
            template[section] = _expand(template[section])
    for resource in template.get("Resources", {}).values():
        if isinstance(resource.get("Properties"), dict):
            resource["Properties"] = _expand(resource["Properties"])
    return template


class Unresolvable(Exception):
    """An intrinsic refers to something not created (yet)."""


@dataclass
class Context:
    """What intrinsics resolve against: parameters, pseudo parameters, and created resources."""

    template: dict[str, Any]
    parameters: dict[str, str]
    region: str = "eu-west-1"
    account: str = "123456789012"
    stack_name: str = "sms-gateway"
    physical: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> {"Ref": ..., "Arn": ...}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            spec = self.template.get("Parameters", {}).get(name, {})
            if spec.get("Type") == "CommaDelimitedList":
                return [v for v in self.parameters[name].split(",")] if self.parameters[name] else [""]
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]["Ref"]
        raise Unresolvable(name)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(self.resolve(arg))
            if key == "Fn::GetAtt":
                logical, attribute = self.resolve(arg) if isinstance(arg, list) else arg.split(".", 1)
                try:
                    return self.physical[logical][attribute]
                except KeyError as exc:
                    raise Unresolvable(f"{logical}.{attribute}") from exc
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

                def substitute(match: re.Match) -> str:
                    name = match.group(1)
                    if name in extra:
                        return str(extra[name])
                    if "." in name and not name.startswith("AWS::"):
                        return str(self.resolve({"Fn::GetAtt": name.split(".", 1)}))
                    return str(self.ref(name))

                return re.sub(r"\$\{([^}!]+)\}", substitute, text)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]) if v is not None)
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(arg[0])]
            if key == "Fn::FindInMap":
                name, top, second = (str(v) for v in self.resolve(arg))
                return self.template["Mappings"][name][top][second]
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
        return {k: self.resolve(v) for k, v in value.items()}


def default_parameters(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    values.update({k: str(v) for k, v in (overrides or {}).items()})
    return values


@dataclass
class Route:
    method: str
    path: str  # as in the template, e.g. /messages/{message_id}
    function: str
    model: dict[str, Any] | None = None  # the request model API Gateway validates the body against

    @property
    def pattern(self) -> re.Pattern:
        regex = re.sub(r"\{([^}/+]+)\+\}", r"(?P<\1>.+)", self.path)
        regex = re.sub(r"\{([^}/]+)\}", r"(?P<\1>[^/]+)", regex)
        return re.compile(f"^{regex}/?$")


@dataclass
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    timeout: int
    environment: dict[str, str]
    events: dict[str, dict[str, Any]]
    condition: str | None = None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def functions(context: Context) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function, with Globals applied and its environment resolved."""
    template = context.template
    globals_ = template.get("Globals", {}).get("Function", {})
    specs = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        if resource.get("Condition") and not context.condition(resource["Condition"]):
            continue
        properties = _merge(globals_, resource.get("Properties", {}))
        variables = context.resolve(properties.get("Environment", {}).get("Variables", {}))
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_dir=ROOT / properties["CodeUri"],
            handler=properties["Handler"],
            timeout=int(properties.get("Timeout", 3)),
            environment={k: "" if v is None else str(v) for k, v in variables.items()},
            events=properties.get("Events", {}),
        )
    return specs


def api_routes(template: dict[str, Any]) -> list[Route]:
    """The routes of every Api event in the template."""
    routes = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                model = None
                request_model = props.get("RequestModel") or {}
                if request_model.get("ValidateBody"):
                    api = template["Resources"][props["RestApiId"]["Ref"]]["Properties"]
                    model = api["Models"][request_model["Model"]]
                routes.append(Route(props["Method"].upper(), props["Path"], logical_id, model))
    return routes
