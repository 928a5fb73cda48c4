"""One-off, after upgrading a gateway that archived events before the archive had shards (issue 14): mark every
hour of the retention whose events sit in the old partition EVT#<hour>, so that POST /events/replay finds them.

    .venv/bin/python tools/mark_archive_hours.py --table <TableName> [--days 400] [--region eu-west-1]

It reads at most one item per hour (a Query with Limit 1) and writes one marker per hour that holds events:
about 9,600 small reads for the 400 days of the archive's retention. Running it again changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any


def main(argv: list[str] | None = None, client: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="the gateway's table (the stack output TableName)")
    parser.add_argument("--days", type=int, default=400, help="how far back to look (the archive keeps 400 days)")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)

    import boto3

    from smsgw.adapters.store import Store

    store = Store(args.table, client or boto3.client("dynamodb", region_name=args.region))
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    marked = 0
    for back in range(args.days * 24 + 1):
        marked += store.events.mark_legacy_hour((hour - timedelta(hours=back)).strftime("%Y-%m-%dT%H"))
    print(f"{marked} hours of events archived before the shards marked for replay")
    return 0


if __name__ == "__main__":
    sys.exit(main())
