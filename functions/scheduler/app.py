"""Scheduled, every minute: scheduled messages whose send_at came join their SIM's queue; stuck queues are repaired."""

from smsgw.logic import sims
from smsgw.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    return sims.every_minute()
