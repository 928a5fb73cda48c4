"""SQS consumer: POSTs sms.mt.status events to each message's status_callback, signed.

Different receivers are called side by side and one receiver's events one at a time, in order.
"""

import asyncio

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response

from smsgw.logic import callbacks
from smsgw.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event, context):
    turns = callbacks.ReceiverTurns()  # per batch

    async def handle_record(record):
        async with turns.of(callbacks.receiver_of(record.body)):
            count = int(record.attributes.approximate_receive_count)
            return await asyncio.to_thread(callbacks.deliver_record, record.body, record.receipt_handle, count)

    processor = AsyncBatchProcessor(event_type=EventType.SQS)
    return async_process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
