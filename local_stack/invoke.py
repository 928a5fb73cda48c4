"""make invoke-<Function> EVENT=events/<file>.json: run one function's real handler with a sample
event against the running local stack (`make run`), as `sam local invoke -e` would, without Docker."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from local_stack.apigw import LambdaContext
from local_stack.template import ROOT, Context, default_parameters, functions, load_template


def main(function: str, event_path: str) -> int:
    outputs_path = Path(os.environ.get("LOCAL_STATE_DIR", ROOT / ".local")) / "outputs.json"
    if not outputs_path.exists():
        print("start the local stack first: make run", file=sys.stderr)
        return 2
    outputs = json.loads(outputs_path.read_text())
    import boto3

    from local_stack.resources import discover

    # DynamoDB has a moto server of its own (local_stack/run.py); stacks from before that serve it with the rest.
    dynamodb_url = outputs.get("DynamoDbEndpointUrl", outputs["AwsEndpointUrl"])
    clients = {
        name: boto3.client(
            name,
            endpoint_url=dynamodb_url if name == "dynamodb" else outputs["AwsEndpointUrl"],
            region_name=outputs["Region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        for name in ("dynamodb", "sqs", "sns", "secretsmanager")
    }
    template = load_template()
    context = Context(
        template,
        default_parameters(template, {"EseyeBaseUrl": outputs["EseyeBaseUrl"], "PublicBaseUrl": outputs["ApiUrl"]}),
        region=outputs["Region"],
    )
    discover(context, clients)
    specs = functions(context)
    if function not in specs:
        print(f"no function {function}; the template has {', '.join(sorted(specs))}", file=sys.stderr)
        return 2
    spec = specs[function]
    os.environ.update(
        {
            **spec.environment,
            "AWS_ENDPOINT_URL": outputs["AwsEndpointUrl"],
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": dynamodb_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": outputs["Region"],
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "ALLOW_INSECURE_CALLBACKS": "true",
        }
    )
    sys.path[:0] = [str(spec.code_dir), str(ROOT / "layers" / "common")]
    module_name, handler_name = spec.handler.rsplit(".", 1)
    handler = getattr(__import__(module_name), handler_name)
    event = json.loads(Path(event_path).read_text())
    result = handler(event, LambdaContext(function_name=function, timeout_seconds=spec.timeout))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m local_stack.invoke <FunctionLogicalId> <event.json>")
    sys.exit(main(sys.argv[1], sys.argv[2]))
