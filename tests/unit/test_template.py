"""template.yaml as CloudFormation will see it: translated by SAM's own translator, offline."""

import json

import pytest

from local_stack.template import api_routes, load_template
from tests.helpers import ESEYE_CALLERS, translated

# Policies SAM attaches by itself; each is AWS-managed and needed by the feature named.
ALLOWED_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": "CloudWatch Logs",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": "Tracing: Active (X-Ray accepts only Resource *)",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": "network interfaces, with StaticEgressIp=true only",
}
# Actions IAM authorises on Resource "*" only (their service authorization reference names no resource type), each
# allowed "*" in a statement that holds nothing else.
WILDCARD_ONLY_ACTIONS = {"cloudwatch:GetMetricData": "HealthFunction reads Eseye's error rate from the gateway's metrics"}


def api_body(template: dict) -> dict:
    [api] = [r for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    return api["Properties"]["Body"]


def security(template: dict, path: str, method: str):
    return api_body(template)["paths"][path][method].get("security")


CUSTOMER_ROUTES = [(r.path, r.method.lower()) for r in api_routes(load_template()) if not r.path.startswith("/webhooks/")]
WEBHOOK_ROUTES = [("/webhooks/{token}/receipt", "get"), ("/webhooks/{token}/receipt", "post"), ("/webhooks/{token}/mo", "post")]


def test_by_default_customers_sign_with_iam_and_webhooks_use_their_token():
    template = translated()
    for path, method in CUSTOMER_ROUTES:
        assert security(template, path, method) == [{"AWS_IAM": []}], (path, method)
    for path, method in WEBHOOK_ROUTES:
        assert security(template, path, method) == [{"NONE": []}]
    assert "x-amazon-apigateway-policy" not in api_body(template)


def test_api_key_mode_requires_keys_with_a_usage_plan_but_not_on_webhooks():
    template = translated("AuthMode=API_KEY")
    for path, method in CUSTOMER_ROUTES:
        assert security(template, path, method) == [{"api_key": []}], (path, method)
    for path, method in WEBHOOK_ROUTES:
        assert security(template, path, method) == [{"NONE": []}]
    types = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::ApiKey"} <= types


def test_webhook_source_cidrs_deny_other_addresses_on_the_webhooks_only():
    policy = api_body(translated("WebhookSourceCidrs=203.0.113.0/24,198.51.100.7/32"))["x-amazon-apigateway-policy"]
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert denies and all(s["Condition"]["NotIpAddress"]["aws:SourceIp"] == ["203.0.113.0/24", "198.51.100.7/32"] for s in denies)
    resources = json.dumps([s["Resource"] for s in policy["Statement"]])
    assert "/webhooks/" in resources and "/messages" not in resources


def test_static_egress_puts_only_the_eseye_callers_behind_the_nat_and_outputs_its_address():
    plain, egress = translated(), translated("StaticEgressIp=true")
    functions = [k for k, r in egress["Resources"].items() if r["Type"] == "AWS::Lambda::Function"]
    assert {f for f in functions if egress["Resources"][f]["Properties"].get("VpcConfig")} == ESEYE_CALLERS
    assert not any(plain["Resources"][f]["Properties"].get("VpcConfig") for f in functions)
    network = [k for k, r in load_template()["Resources"].items() if r["Type"].startswith("AWS::EC2::")]
    assert {"EgressNatGateway", "EgressIp", "EgressVpc"} <= set(network)
    assert all(egress["Resources"][k].get("Condition") == "UseStaticEgress" for k in network)  # made only when asked for
    output = load_template()["Outputs"]["EseyeEgressIp"]
    assert output == {"Condition": "UseStaticEgress", "Description": output["Description"], "Value": {"Ref": "EgressIp"}}
    vpc_role = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    assert vpc_role in egress["Resources"]["SendFunctionRole"]["Properties"]["ManagedPolicyArns"]
    assert vpc_role not in plain["Resources"]["SendFunctionRole"]["Properties"]["ManagedPolicyArns"]


def managed_arn(arn) -> str:
    """A managed policy ARN as deployed in the aws partition (roles of our own write it with !Sub)."""
    if isinstance(arn, dict) and "Fn::Sub" in arn:
        return arn["Fn::Sub"].replace("${AWS::Partition}", "aws")
    return arn


@pytest.mark.parametrize("mode", [(), ("StaticEgressIp=true",), ("AuthMode=API_KEY",)])
def test_every_function_has_least_privilege(mode):
    template = translated(*mode)
    roles = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role" and k != "ApiGatewayLoggingRole"}
    assert len(roles) == sum(1 for r in load_template()["Resources"].values() if r["Type"] == "AWS::Serverless::Function")
    for name, role in roles.items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert managed_arn(arn) in ALLOWED_MANAGED, f"{name} has managed policy {arn}"
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                assert all("*" not in a for a in actions), f"{name}: wildcard action {actions}"
                if resources == ["*"] and set(actions) <= set(WILDCARD_ONLY_ACTIONS):
                    continue
                assert all(r != "*" and "*" not in json.dumps(r) for r in resources), f"{name}: wildcard resource {resources}"


@pytest.mark.parametrize("logical_id", [k for k, r in load_template()["Resources"].items() if r["Type"] == "AWS::Serverless::Function"])
def test_every_function_logs_to_its_own_group_with_retention(logical_id):
    template = load_template()
    log_group = template["Resources"][logical_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert template["Resources"][log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert template["Globals"]["Function"]["Tracing"] == "Active"


def test_outputs_have_their_stable_names_and_no_secret_values():
    outputs = load_template()["Outputs"]
    assert {"ApiUrl", "TableName", "SecretArn", "EventsTopicArn"} <= set(outputs)
    assert "SecretString" not in json.dumps(outputs)


def environments(template: dict) -> dict[str, dict]:
    """Function -> the environment variables it is given (Globals' and its own), unresolved."""
    common = template["Globals"]["Function"]["Environment"]["Variables"]
    return {
        name: {**common, **r["Properties"].get("Environment", {}).get("Variables", {})}
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }


def test_no_secret_in_any_environment_variable():
    for name, variables in environments(load_template()).items():
        text = json.dumps(variables)
        assert "SecretString" not in text and "password" not in text.lower(), name


def test_alarms_cover_every_function_every_dead_letter_queue_and_the_eseye_error_rate():
    resources = load_template()["Resources"]
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched_functions = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms if a.get("MetricName") == "Errors"}
    assert watched_functions == {k for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    watched_queues = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms if a.get("Namespace") == "AWS/SQS"}
    assert watched_queues == {k for k in resources if k.endswith("DeadLetterQueue")}
    assert any("rate" in json.dumps(a.get("Metrics", [])) for a in alarms)
    assert all(a["AlarmActions"] == [{"Ref": "AlertsTopic"}] for a in alarms)


def test_the_dashboard_body_is_valid_json_once_substituted():
    from local_stack.template import Context, default_parameters

    template = load_template()
    context = Context(template, default_parameters(template))
    context.physical.update({q: {"QueueName": f"sms-gateway-{q}"} for q in template["Resources"] if q.endswith("DeadLetterQueue")})
    body = json.loads(context.resolve(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]))
    titles = {w["properties"]["title"] for w in body["widgets"]}
    assert {"Messages", "Eseye latency (ms)", "Dead-letter queues", "API"} <= titles


def test_the_api_stage_waits_for_the_account_logging_role():
    resources = translated()["Resources"]
    # The stage refers to the deployment, which refers to the RestApi, which waits for the account setting.
    [(rest_api, api)] = [(k, r) for k, r in resources.items() if r["Type"] == "AWS::ApiGateway::RestApi"]
    assert api["DependsOn"] in ("ApiGatewayAccount", ["ApiGatewayAccount"])
    for stage in (r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"):
        assert stage["Properties"]["RestApiId"] == {"Ref": rest_api}
    role = resources["ApiGatewayLoggingRole"]["Properties"]
    assert [str(arn).split(":policy/")[-1].rstrip("'}") for arn in role["ManagedPolicyArns"]] == ["service-role/AmazonAPIGatewayPushToCloudWatchLogs"]


def test_status_callbacks_are_retried_for_at_least_24_hours_before_the_dead_letter_queue():
    from smsgw.logic.callbacks import MAX_ATTEMPTS, backoff_seconds, retry_span_seconds

    # Given the callback queue as deployed and the deliverer's backoff schedule
    queue = translated()["Resources"]["CallbackQueue"]["Properties"]
    attempts = queue["RedrivePolicy"]["maxReceiveCount"]
    assert attempts == MAX_ATTEMPTS  # the schedule documented in logic/callbacks.py is the one deployed
    # Then every attempt failing still spans a day (peers: Vonage and 1NCE 24 h), within SQS's limits
    assert retry_span_seconds(attempts) >= 24 * 3600
    assert all(backoff_seconds(n) <= 12 * 3600 for n in range(1, attempts + 1))  # ChangeMessageVisibility's cap
    assert queue["MessageRetentionPeriod"] > retry_span_seconds(attempts) + backoff_seconds(attempts)


def consumers(template: dict) -> dict[str, dict]:
    """Function -> its event source mapping, for every queue- or stream-triggered function."""
    return {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }


def role_of(template: dict, function: str) -> dict:
    role = template["Resources"][function]["Properties"]["Role"]
    return template["Resources"][role["Fn::GetAtt"][0]]["Properties"]


@pytest.mark.parametrize("mode", [(), ("StaticEgressIp=true",)])
def test_queue_and_stream_consumers_may_read_only_their_own_source(mode):
    # Given every function an SQS queue or the table's stream triggers, as deployed
    template = translated(*mode)
    mappings = consumers(template)
    assert {"DispatcherFunction", "CallbacksFunction", "PublisherFunction"} <= set(mappings)
    for function, mapping in mappings.items():
        role = role_of(template, function)
        # Then no SAM-managed policy grants reading every queue or stream
        arns = [managed_arn(a) for a in role.get("ManagedPolicyArns", [])]
        assert not [a for a in arns if "SQSQueueExecution" in a or "DynamoDBExecution" in a], (function, arns)
        # and what the mapping needs is granted on its own source only
        statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        reading = [s for s in statements if {"sqs:ReceiveMessage", "dynamodb:GetRecords"} & set(s["Action"])]
        assert reading and all(s["Resource"] == mapping["EventSourceArn"] for s in reading), (function, reading)


def test_no_function_declares_policies_that_sam_would_ignore():
    # SAM drops a function's Policies without a word when it has a Role of its own.
    for name, resource in load_template()["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert not ("Role" in resource["Properties"] and "Policies" in resource["Properties"]), name


def test_alarms_can_publish_to_the_encrypted_alerts_topic():
    # Given the alerts topic as deployed
    resources = translated()["Resources"]
    key_ref = resources["AlertsTopic"]["Properties"]["KmsMasterKeyId"]
    # Then it is encrypted with a customer-managed key (CloudWatch cannot use alias/aws/sns) ...
    assert isinstance(key_ref, dict) and "Ref" in key_ref, key_ref
    key = resources[key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    # ... whose policy lets CloudWatch encrypt what it publishes there
    grants = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert grants and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(grants[0]["Action"])


def stage_of(template: dict) -> dict:
    [stage] = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"]
    return stage


def test_webhooks_have_a_throttle_of_their_own():
    # Given webhook limits set apart from the customer API's
    stage = stage_of(translated("WebhookThrottlingRateLimit=7", "WebhookThrottlingBurstLimit=9"))
    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in stage["MethodSettings"]}
    # Then each webhook method has its own limits, and the customer API keeps the stage's
    for path, method in WEBHOOK_ROUTES:
        setting = settings[("/" + path.replace("/", "~1"), method.upper())]
        assert (int(setting["ThrottlingRateLimit"]), int(setting["ThrottlingBurstLimit"])) == (7, 9), (path, method)
    customer = settings[("/*", "*")]
    assert (int(customer["ThrottlingRateLimit"]), int(customer["ThrottlingBurstLimit"])) == (50, 100)


def test_waf_is_off_by_default_and_when_on_limits_each_address_and_enforces_the_allowlist():
    def of_type(template, kind):
        return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]

    # Every WAF resource exists only when asked for, and by default it is not
    waf = [r for r in translated()["Resources"].values() if r["Type"].startswith("AWS::WAFv2::")]
    assert waf and all(r.get("Condition") in ("UseWaf", "UseWafAllowlist") for r in waf)
    assert load_template()["Parameters"]["EnableWaf"]["Default"] == "false"
    assert load_template()["Conditions"]["UseWaf"] == {"Fn::Equals": [{"Ref": "EnableWaf"}, "true"]}
    # With WAF on and the source CIDRs set
    template = translated("EnableWaf=true", "WebhookSourceCidrs=203.0.113.0/24")
    [acl] = of_type(template, "AWS::WAFv2::WebACL")
    rules = {r["Name"]: r for r in acl["Rules"]}
    assert rules["rate-per-ip"]["Statement"]["RateBasedStatement"] == {"Limit": 1000, "AggregateKeyType": "IP"}
    assert "Block" in rules["rate-per-ip"]["Action"]
    allowlist = json.dumps(rules["webhook-source-allowlist"])
    assert "/webhooks/" in allowlist and "NotStatement" in allowlist and "Block" in rules["webhook-source-allowlist"]["Action"]
    assert of_type(template, "AWS::WAFv2::IPSet")[0]["Addresses"] == ["203.0.113.0/24"]
    assert of_type(template, "AWS::WAFv2::WebACLAssociation")
    # With WAF on and no CIDRs: the rate rule only
    names = {r["Name"] for r in of_type(translated("EnableWaf=true"), "AWS::WAFv2::WebACL")[0]["Rules"]}
    assert "rate-per-ip" in names and "webhook-source-allowlist" not in names


def test_the_webhook_token_stays_out_of_access_logs_traces_and_function_logs():
    template = translated()
    # Access logs name the route template, never the path the request used (which holds the token)
    log_format = stage_of(template)["AccessLogSetting"]["Format"]
    assert "$context.resourcePath" in log_format
    assert not any(v in log_format for v in ("$context.path", "$context.requestOverride", "$input", "$request"))
    # API Gateway samples no webhook request for X-Ray (its segments record the URL)
    rule = template["Resources"]["WebhookTraceSampling"]["Properties"]["SamplingRule"]
    assert (rule["FixedRate"], rule["ReservoirSize"], rule["URLPath"], rule["ServiceType"]) == (0, 0, "*/webhooks/*", "AWS::ApiGateway::Stage")
    assert rule["ServiceName"] == "sms-gateway-Api/v1" and rule["Priority"] == 1
    # and no function logs its incoming event (which would carry the path)
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert str(variables.get("POWERTOOLS_LOGGER_LOG_EVENT", "false")).lower() == "false", name


def test_what_a_token_holder_can_create_expires_in_days():
    template = load_template()
    for parameter, variable in [
        ("OrphanReceiptRetentionDays", "ORPHAN_RECEIPT_RETENTION_DAYS"),
        ("QuarantineRetentionDays", "QUARANTINE_RETENTION_DAYS"),
        ("ConcatBufferRetentionDays", "CONCAT_BUFFER_RETENTION_DAYS"),
    ]:
        assert int(template["Parameters"][parameter]["Default"]) <= 30, parameter
        given = [variables[variable] for variables in environments(template).values() if variable in variables]
        assert given and all(value == {"Ref": parameter} for value in given), variable
