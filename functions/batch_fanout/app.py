"""SQS consumer: a batch's fan-out jobs (plan, one chunk, cancel). Failed records return to the queue, then its DLQ."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from smsgw.logic import batches
from smsgw.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def handle_record(record):
    return batches.run_job(batches.parse_job(record.body))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
