"""Scheduled: mark commands whose reply window passed (the publisher emits sms.mt.reply_timeout)."""

from smsgw.logic import replies
from smsgw.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    return {"timed_out": replies.sweep_timeouts()}
