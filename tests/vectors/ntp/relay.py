"""UDP relay that logs NTP packets in both directions (used to capture packets.json).

    python relay.py LISTEN_PORT TARGET_PORT OUT.json SECONDS

Listens on 127.0.0.1:LISTEN_PORT, forwards to 127.0.0.1:TARGET_PORT, relays the replies back to
the last client and writes ``[["req"|"resp", hex], ...]`` to OUT.json. Loopback only.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time


def main() -> None:
    listen, target, out, duration = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                     float(sys.argv[4]))
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", listen))
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.bind(("127.0.0.1", 0))
    client = None
    log: list[tuple[str, str]] = []
    end = time.monotonic() + duration
    while time.monotonic() < end:
        ready, _, _ = select.select([front, back], [], [], 0.2)
        for s in ready:
            data, addr = s.recvfrom(4096)
            if s is front:
                client = addr
                log.append(("req", data.hex()))
                back.sendto(data, ("127.0.0.1", target))
            elif client is not None:
                log.append(("resp", data.hex()))
                front.sendto(data, client)
    with open(out, "w") as f:
        json.dump(log, f, indent=1)


if __name__ == "__main__":
    main()
