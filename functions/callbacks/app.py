"""SQS consumer: POSTs sms.mt.status events to each message's status_callback, signed."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from smsgw.logic import callbacks
from smsgw.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def handle_record(record):
    return callbacks.deliver_record(record.body, record.receipt_handle, int(record.attributes.approximate_receive_count))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
