"""Create, in moto (in-process or server), every resource template.yaml declares.

Each supported resource type maps to the boto3 calls that make it, and reports the attributes
(`Ref`, `Arn`, `StreamArn`, ...) that other resources and function environments refer to.
"""

from __future__ import annotations

import json
import secrets as token_source
from collections.abc import Callable
from typing import Any

from local_stack.template import Context, Unresolvable


def _table(ctx: Context, logical_id: str, props: dict[str, Any], clients: dict[str, Any], options: dict) -> dict[str, str]:
    name = props.get("TableName") or f"{ctx.stack_name}-{logical_id}"
    ddb = clients["dynamodb"]
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("StreamSpecification"):
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if props.get("SSESpecification"):
        kwargs["SSESpecification"] = {"Enabled": bool(props["SSESpecification"].get("SSEEnabled"))}
    table = ddb.create_table(**kwargs)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    if props.get("PointInTimeRecoverySpecification"):
        ddb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": bool(props["PointInTimeRecoverySpecification"].get("PointInTimeRecoveryEnabled"))
            },
        )
    attributes = {"Ref": name, "Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
    return attributes


def _queue(ctx: Context, logical_id: str, props: dict[str, Any], clients: dict[str, Any], options: dict) -> dict[str, str]:
    name = props.get("QueueName") or f"{ctx.stack_name}-{logical_id}"
    attributes: dict[str, str] = {}
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
        if key in props:
            attributes[key] = str(props[key])
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    if props.get("SqsManagedSseEnabled"):
        attributes["SqsManagedSseEnabled"] = "true"
    url = clients["sqs"].create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def _topic(ctx: Context, logical_id: str, props: dict[str, Any], clients: dict[str, Any], options: dict) -> dict[str, str]:
    name = props.get("TopicName") or f"{ctx.stack_name}-{logical_id}"
    attributes = {"KmsMasterKeyId": props["KmsMasterKeyId"]} if props.get("KmsMasterKeyId") else {}
    arn = clients["sns"].create_topic(Name=name, Attributes=attributes)["TopicArn"]
    return {"Ref": arn, "TopicArn": arn, "TopicName": name}


def _secret(ctx: Context, logical_id: str, props: dict[str, Any], clients: dict[str, Any], options: dict) -> dict[str, str]:
    name = props.get("Name") or f"{ctx.stack_name}-{logical_id}"
    generate = props.get("GenerateSecretString", {})
    if "SecretString" in props:
        value = props["SecretString"]
    elif not generate.get("SecretStringTemplate"):  # a plain generated string (a signing key)
        value = options.get("secret_overrides", {}).get(logical_id, {}).get("value") or token_source.token_hex(32)
    else:
        generate = props.get("GenerateSecretString", {})
        document = json.loads(generate.get("SecretStringTemplate", "{}"))
        if generate.get("GenerateStringKey"):
            document[generate["GenerateStringKey"]] = token_source.token_hex(20)
        document.update(options.get("secret_overrides", {}).get(logical_id, {}))
        value = json.dumps(document)
    arn = clients["secretsmanager"].create_secret(Name=name, SecretString=value)["ARN"]
    return {"Ref": arn, "Id": arn, "Name": name}


def _subscription(ctx: Context, logical_id: str, props: dict[str, Any], clients: dict[str, Any], options: dict) -> dict[str, str]:
    attributes = {}
    if props.get("RawMessageDelivery"):
        attributes["RawMessageDelivery"] = "true"
    if props.get("FilterPolicy"):
        attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
    arn = clients["sns"].subscribe(
        TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"], Attributes=attributes, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    return {"Ref": arn, "Arn": arn}


def _queue_policy(ctx: Context, logical_id: str, props: dict[str, Any], clients: dict[str, Any], options: dict) -> dict[str, str]:
    for url in props["Queues"]:
        clients["sqs"].set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    return {"Ref": logical_id}


def _kms_key(ctx: Context, logical_id: str, props: dict[str, Any], clients: dict[str, Any], options: dict) -> dict[str, str]:
    """A key in name only: moto's SNS accepts any key id and encrypts nothing, so no KMS call is needed."""
    key_id = f"local-{logical_id}"
    arn = f"arn:aws:kms:{ctx.region}:{ctx.account}:key/{key_id}"
    return {"Ref": key_id, "Arn": arn, "KeyId": key_id}


CREATORS: dict[str, Callable[..., dict[str, str]]] = {
    "AWS::KMS::Key": _kms_key,
    "AWS::DynamoDB::Table": _table,
    "AWS::SQS::Queue": _queue,
    "AWS::SNS::Topic": _topic,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::SNS::Subscription": _subscription,
    "AWS::SQS::QueuePolicy": _queue_policy,
}


def create_resources(ctx: Context, clients: dict[str, Any], secret_overrides: dict[str, dict] | None = None) -> dict[str, dict[str, str]]:
    """Create every supported resource, in an order that satisfies their references. Returns ctx.physical."""
    options = {"secret_overrides": secret_overrides or {}}
    pending = {
        logical_id: resource
        for logical_id, resource in ctx.template["Resources"].items()
        if resource["Type"] in CREATORS and (not resource.get("Condition") or ctx.condition(resource["Condition"]))
    }
    while pending:
        progressed = False
        for logical_id, resource in list(pending.items()):
            try:
                props = ctx.resolve(resource.get("Properties", {}))
            except Unresolvable:
                continue  # refers to something not created yet
            ctx.physical[logical_id] = CREATORS[resource["Type"]](ctx, logical_id, props, clients, options)
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise RuntimeError(f"cannot resolve references of {sorted(pending)}")
    return ctx.physical


def outputs(ctx: Context) -> dict[str, str]:
    """The template's Outputs that can be resolved locally."""
    values = {}
    for name, output in ctx.template.get("Outputs", {}).items():
        if output.get("Condition") and not ctx.condition(output["Condition"]):
            continue
        try:
            values[name] = str(ctx.resolve(output["Value"]))
        except Unresolvable:
            continue
    return values


def discover(ctx: Context, clients: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Find the resources a running local stack made (by their template names) and fill ctx.physical."""
    stack = ctx.stack_name
    for logical_id, resource in ctx.template["Resources"].items():
        name = f"{stack}-{logical_id}"
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            table = clients["dynamodb"].describe_table(TableName=name)["Table"]
            ctx.physical[logical_id] = {"Ref": name, "Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn", "")}
        elif kind == "AWS::SQS::Queue":
            url = clients["sqs"].get_queue_url(QueueName=name)["QueueUrl"]
            arn = clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            ctx.physical[logical_id] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
        elif kind == "AWS::SNS::Topic":
            arn = f"arn:aws:sns:{ctx.region}:{ctx.account}:{name}"
            ctx.physical[logical_id] = {"Ref": arn, "TopicArn": arn, "TopicName": name}
        elif kind == "AWS::SecretsManager::Secret":
            arn = clients["secretsmanager"].describe_secret(SecretId=name)["ARN"]
            ctx.physical[logical_id] = {"Ref": arn, "Id": arn, "Name": name}
    return ctx.physical
