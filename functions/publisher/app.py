"""DynamoDB stream consumer: turns committed message changes into events on the SNS topic."""

from smsgw.logic import publish
from smsgw.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    return publish.handle_stream_batch(event.get("Records", []))
