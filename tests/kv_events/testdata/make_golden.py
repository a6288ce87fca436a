#!/usr/bin/env python3
"""Writes the golden KV-event payloads that kv_event_golden_test.cpp compares moeserve's encoder
with and decodes: one vLLM KVEventBatch in the msgspec array_like encoding and the same batch in
the map encoding, written by Python's msgpack (an encoder independent of msgpack-c).

Run once by hand (Debian: apt-get install python3-msgpack), from this directory:
    /usr/bin/python3 make_golden.py
and commit the .msgpack files; the tests and CI read the files and never need Python.

The batch must stay in sync with golden_batch() in kv_event_golden_test.cpp. Every block hash is
at least 2**32, so msgpack's shortest form for it is uint64 (0xcf), the form moeserve always
writes hashes in.
"""

import msgpack

TS = 1733616000.25  # exact in float64
RANK = 2

STORED = dict(
    block_hashes=[0x1122334455667788, 0xFEDCBA9876543210],
    parent_block_hash=0x0123456789ABCDEF,
    # Two blocks of four tokens, spanning msgpack's fixint, uint8, uint16 and uint32 forms.
    token_ids=[1, 127, 128, 255, 256, 65535, 65536, 100000],
    block_size=4,
    lora_id=None,
    medium="GPU",
)
STORED_LORA = dict(
    block_hashes=[0xA5A5A5A5A5A5A5A5],
    parent_block_hash=None,
    token_ids=[7, 8, 9, 10],
    block_size=4,
    lora_id=3,
    medium="CPU",
    lora_name="adapter-a",
)
REMOVED = dict(block_hashes=[0x8000000000000000, 0x100000000], medium="GPU")

EVENTS = [("BlockStored", STORED), ("BlockStored", STORED_LORA), ("BlockRemoved", REMOVED),
          ("AllBlocksCleared", {})]


def array_like():
    # msgspec array_like=True: [tag, fields in declaration order...]
    events = [[tag] + list(fields.values()) for tag, fields in EVENTS]
    return [TS, events, RANK]


def map_encoded():
    # msgspec default: {"type": tag, field: value, ...}
    events = [dict(type=tag, **fields) for tag, fields in EVENTS]
    return dict(ts=TS, events=events, data_parallel_rank=RANK)


def main():
    for name, obj in (("kv_event_batch_array.msgpack", array_like()),
                      ("kv_event_batch_map.msgpack", map_encoded())):
        with open(name, "wb") as f:
            f.write(msgpack.packb(obj, use_bin_type=True))


if __name__ == "__main__":
    main()
