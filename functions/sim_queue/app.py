"""DynamoDB stream consumer: each SIM's delivery queue follows its messages (slots freed, next ones started)."""

from smsgw.logic import sims
from smsgw.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    return sims.handle_stream_batch(event.get("Records", []))
