"""SQS consumer: retries sends that Eseye did not answer. Failed records return to the queue, then its DLQ."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from smsgw.logic import dispatch
from smsgw.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def handle_record(record):
    return dispatch.dispatch(dispatch.parse_job(record.body))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
