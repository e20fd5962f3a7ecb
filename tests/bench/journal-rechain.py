#!/usr/bin/env python3
"""Writes a journal of N records by repeating a real journal's records and re-chaining them.

Each line keeps its bytes except `seq`, `prev` and `hash`, which are rewritten exactly as
src/journal/record.rs seals a record: `hash` is the sha256 (hex) of the line without its
`,"hash":"<64 hex>"` member, and `prev` is the previous record's hash (64 zeros first).

    tests/bench/journal-rechain.py SOURCE.jsonl N OUT.jsonl
"""
import hashlib
import re
import sys

HASH_KEY = b',"hash":"'
PREV_KEY = b',"prev":"'
SUFFIX = len(HASH_KEY) + 64 + len(b'"}')
SEQ = re.compile(rb'^\{"seq":[0-9]+')


def main():
    src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(src, 'rb') as f:
        lines = [l.rstrip(b'\n') for l in f if l.endswith(b'\n')]
    bodies = []
    for l in lines:
        body = l[:-SUFFIX]
        # The body ends with ,"prev":"<64 hex>"; keep what is between seq and prev.
        assert body[-(len(PREV_KEY) + 65):].startswith(PREV_KEY), l[:80]
        m = SEQ.match(body)
        assert m, l[:80]
        bodies.append(body[m.end():-(len(PREV_KEY) + 65)])
    prev = b'0' * 64
    with open(out, 'wb') as f:
        for i in range(n):
            middle = bodies[i % len(bodies)]
            body = b'{"seq":%d' % (i + 1) + middle + PREV_KEY + prev + b'"'
            h = hashlib.sha256(body + b'}').hexdigest().encode()
            f.write(body + HASH_KEY + h + b'"}\n')
            prev = h


if __name__ == '__main__':
    main()
