"""Verifies the DKIM signature of one message with dkimpy, the reference
implementation, against a given DNS TXT record (no DNS lookup).

    python3 tests/dkim_verify.py MESSAGE.eml 'v=DKIM1; k=rsa; p=...'

Prints PASS or FAIL and the reason; exit status 0 only on PASS.
"""
import logging
import sys

import dkim

logging.basicConfig(level=logging.INFO, format="%(message)s")
raw = open(sys.argv[1], "rb").read()
record = sys.argv[2].encode()


def dnsfunc(name, timeout=5):
    return record


ok = dkim.verify(raw, logger=logging.getLogger(), dnsfunc=dnsfunc)
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
