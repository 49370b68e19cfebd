#!/usr/bin/env python3
"""A real SMTP server for the test suite (aiosmtpd), with fault injection.

Every accepted message is saved as DIR/NNNNNN.eml with DIR/NNNNNN.json beside
it: the envelope (mail_from, rcpt_tos), the Message-ID, and the defects that
Python's email package (policy.default) finds in it, so that tests check
what a server really received with an independent MIME parser.

    smtp_server.py --dir DIR [--tls CERT KEY] [--auth USER:PASS]
                   [--fail451 ADDR --fail451-times N] [--fail550 ADDR]
                   [--reject-all] [--drop-after N] [--delay-ms MS]

Prints "PORT <n>" on stdout once it listens on 127.0.0.1:<n>, then runs until
killed.
"""
import argparse
import asyncio
import collections
import email
import email.policy
import json
import os
import socket
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler:
    def __init__(self, args):
        self.dir = args.dir
        self.fail451 = set(a.lower() for a in args.fail451)
        self.fail451_times = args.fail451_times
        self.fail550 = set(a.lower() for a in args.fail550)
        self.reject_all = args.reject_all
        self.drop_after = args.drop_after
        self.delay = args.delay_ms / 1000.0
        self.seen451 = collections.Counter()
        self.count = 0
        self.dropped = False
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.drop_after is not None and not self.dropped and self.count >= self.drop_after:
            self.dropped = True
            server.transport.abort()  # the connection drops without a reply
            return "421 4.3.2 connection dropped by the test server"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        a = address.lower()
        if self.reject_all:
            return "554 5.7.1 <%s>: Relay access denied" % address
        if a in self.fail550:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if a in self.fail451 and self.seen451[a] < self.fail451_times:
            self.seen451[a] += 1
            return "451 4.7.1 <%s>: Greylisted, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        defects = [repr(d) for d in msg.defects]
        for part in msg.walk():
            defects.extend(repr(d) for d in part.defects)
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.dir, "%06d" % n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "message_id": msg.get("Message-ID"),
            "defects": defects,
            "tls": session.ssl is not None,
            "auth": bool(session.authenticated),
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth")
    p.add_argument("--fail451", action="append", default=[])
    p.add_argument("--fail451-times", type=int, default=1)
    p.add_argument("--fail550", action="append", default=[])
    p.add_argument("--reject-all", action="store_true", help="554 to every recipient (a relay that denies the sender)")
    p.add_argument("--drop-after", type=int)
    p.add_argument("--delay-ms", type=int, default=0)
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    kwargs = {}
    if args.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
            # handled=False: let aiosmtpd answer 535 itself on a wrong password.
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(args.tls))

    port = free_port()
    controller = Controller(Handler(args), hostname="127.0.0.1", port=port, ready_timeout=10, **kwargs)
    if args.tls:
        # The controller's start-up check speaks plain SMTP; with STARTTLS
        # required it still connects fine.
        pass
    controller.start()
    print("PORT %d" % port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
