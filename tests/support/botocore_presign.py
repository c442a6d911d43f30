#!/usr/bin/python3
"""Presigns GET https://HOST/mqtt with botocore's SigV4QueryAuth at a fixed time and prints the
request target (PATH?QUERY), for tests/integration/aws_botocore_test.cpp to compare with
thingmuxd's own presigned AWS IoT WebSocket URL.

Usage: botocore_presign.py HOST REGION SERVICE EXPIRES TIME KEY_ID SECRET [TOKEN]
  TIME: YYYYMMDDTHHMMSSZ (UTC). With TOKEN, botocore signs it inside the query, as most AWS
  services want it.
"""
import datetime
import sys
from unittest import mock
from urllib.parse import urlsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials


def main(argv):
    if len(argv) not in (8, 9):
        print(__doc__, file=sys.stderr)
        return 2
    host, region, service, expires, when, key_id, secret = argv[1:8]
    token = argv[8] if len(argv) == 9 else None
    fixed = datetime.datetime.strptime(when, "%Y%m%dT%H%M%SZ")
    credentials = botocore.credentials.Credentials(key_id, secret, token)
    request = botocore.awsrequest.AWSRequest(method="GET", url=f"https://{host}/mqtt")
    signer = botocore.auth.SigV4QueryAuth(credentials, service, region, expires=int(expires))
    # botocore signs at datetime.datetime.utcnow(): hold its clock at TIME.
    with mock.patch.object(botocore.auth, "datetime") as clock:
        clock.datetime.utcnow.return_value = fixed
        signer.add_auth(request)
    url = urlsplit(request.url)
    print(f"{url.path}?{url.query}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
