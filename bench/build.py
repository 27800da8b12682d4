"""How long building outgoing messages takes: ``build_message`` and its wire form, 1000 messages.

    .venv/bin/python bench/build.py [--messages 1000] [--repeat 5] [--shape text|html|attachment]

The records are what bench/forward.py's operation gives for its ~5 KB messages (a sender, one
recipient, a subject with non-ASCII text, a ~5 KB text body, a custom header, a Reply-To with a
display name); ``--shape`` adds an HTML body beside the text, or a 4 KB attachment. No database,
no network: the cost of building alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forward import PARAGRAPH, RECIPIENT, SENDER, SOURCE_HEADER  # noqa: E402 - the messages forward.py forwards

from connectors.email.message.build import build_message  # noqa: E402

SHAPES = {
    "text": {},
    "html": {"html": "<p>" + PARAGRAPH.replace("\n", "</p>\n<p>") + "</p>\n"},
    "attachment": {"attachments": [{"filename": "printer.log", "content": bytes(range(256)) * 16}]},
}


def records(count: int, shape: str = "text") -> list[dict]:
    return [{"from": SENDER, "to": RECIPIENT,
             "subject": f"Fwd: Question {n} — Grüße", "text": PARAGRAPH,
             "reply_to": f"Customer {n} <customer{n}@example.org>",
             "headers": [[SOURCE_HEADER, f"<q{n}@example.org>"]], **SHAPES[shape]} for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shape", choices=SHAPES, default="text")
    args = parser.parse_args()
    batch = records(args.messages, args.shape)
    for record in batch[:20]:  # imports and caches warmed up
        b"".join(build_message(record, message_id_domain="example.com").to_wire().chunks())
    built, flattened = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        outgoing = [build_message(record, message_id_domain="example.com") for record in batch]
        middle = time.perf_counter()
        for out in outgoing:
            b"".join(out.to_wire().chunks())
        built.append(middle - started)
        flattened.append(time.perf_counter() - middle)
    together = [b + f for b, f in zip(built, flattened, strict=True)]
    per_message = 1e6 / args.messages  # µs per message: hundredths of a second hide a 10 % change
    build, wire, both = (statistics.median(times) for times in (built, flattened, together))
    print(f"{args.messages} {args.shape} messages, median of {args.repeat}: "
          f"build_message {build:.3f} s ({build * per_message:.0f} µs a message), "
          f"to_wire {wire:.3f} s ({wire * per_message:.0f} µs), together {both:.3f} s ({both * per_message:.0f} µs)")


if __name__ == "__main__":
    main()
