"""Run Prowler against a local AWS emulator (scripts/security-scan.sh runs this with the
Prowler venv's python, passing Prowler's own arguments).

One shim: S3 Control operations carry the account id as a host prefix
(`123456789012.s3-control...`). Against a loopback endpoint (`http://127.0.0.1:PORT`) that
prefix gives `123456789012.127.0.0.1`, which does not resolve. botocore's
`inject_host_prefix` switch is not reachable through Prowler's clients, so a
`before-sign.s3-control` handler strips the prefix from the URL before the request is
signed. Nothing else is changed: every other request goes out as Prowler builds it, to
AWS_ENDPOINT_URL (botocore reads it for every service).
"""

import re
import sys
from urllib.parse import urlsplit, urlunsplit

import botocore.session

_ACCOUNT_PREFIX = re.compile(r"^\d{12}\.")


def strip_account_prefix(request, **_kwargs):
    parts = urlsplit(request.url)
    host = _ACCOUNT_PREFIX.sub("", parts.netloc, count=1)
    if host != parts.netloc:
        request.url = urlunsplit(parts._replace(netloc=host))


_original_init = botocore.session.Session.__init__


def _init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.register("before-sign.s3-control", strip_account_prefix)


botocore.session.Session.__init__ = _init

if __name__ == "__main__":
    from prowler.__main__ import prowler

    sys.argv[0] = "prowler"
    sys.exit(prowler())
