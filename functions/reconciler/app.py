"""Scheduled: give every stale pending message a retry, publish long MOs whose parts stopped coming, and repair
SIM queues that stopped moving, so none waits for ever."""

from smsgw.logic import reconcile
from smsgw.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    return {
        "rescheduled": reconcile.reconcile_pending(),
        "incomplete_published": reconcile.publish_incomplete_mos(),
        "dequeued_by_repair": reconcile.repair_sim_queues(),
    }
