#!/usr/bin/env python3
"""Independent pure-Python Philox4x32-10 + Box-Muller, written from the Random123 paper.

Writes tests/fixtures/philox_normal.json: the first values of tlora::philox_normal and
tlora::philox_dropout_mask for a few (seed, stream name) pairs, so the C++ generator is checked
against a second implementation, not against itself. Run from the repository root:

    python3 tools/philox_reference.py
"""
import json
import math
import pathlib

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c = list(ctr)
    k0, k1 = key
    for i in range(10):
        if i:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & MASK32, (p0 >> 32) ^ c[3] ^ k1, p0 & MASK32]
    return c


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def block(seed, stream, index):
    return philox4x32_10(
        [index & MASK32, index >> 32, stream & MASK32, stream >> 32], [seed & MASK32, seed >> 32])


def unit(hi, lo):
    return (((hi << 32) | lo) >> 11) * 2.0**-53


def normals(seed, stream, n, std):
    out = []
    for b in range((n + 1) // 2):
        w = block(seed, stream, b)
        radius = math.sqrt(-2.0 * math.log(1.0 - unit(w[0], w[1])))
        angle = 2.0 * math.pi * unit(w[2], w[3])
        out += [std * radius * math.cos(angle), std * radius * math.sin(angle)]
    return out[:n]


def uniforms(seed, stream, n, low, high):
    out = []
    for b in range((n + 1) // 2):
        w = block(seed, stream, b)
        out += [low + (high - low) * unit(w[0], w[1]), low + (high - low) * unit(w[2], w[3])]
    return out[:n]


def mask(seed, stream, n, p):
    threshold = int(p * 4294967296.0)
    keep = 1.0 / (1.0 - p)
    out = []
    for b in range((n + 3) // 4):
        out += [keep if w >= threshold else 0.0 for w in block(seed, stream, b)]
    return out[:n]


# Random123's kat_vectors for philox4x32 10: (counter, key) -> output.
KNOWN_ANSWERS = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([MASK32] * 4, [MASK32] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


def main():
    for ctr, key, want in KNOWN_ANSWERS:
        assert philox4x32_10(ctr, key) == want, "reference Philox fails a known-answer vector"
    cases = []
    for seed, name, n, std in [(0, "tlora/down", 37, 1.0), (1234567890123, "encoder.layer.3.attention.self.query/up", 64, 0.05), (2**64 - 1, "", 9, 2.0)]:
        cases.append({"seed": str(seed), "stream_name": name, "stream_id": str(fnv1a64(name)), "std": std, "normal": normals(seed, fnv1a64(name), n, std)})
    masks = []
    for seed, name, n, p in [(7, "layer/dropout/0", 50, 0.5), (7, "layer/dropout/1", 50, 0.1)]:
        masks.append({"seed": str(seed), "stream_name": name, "p": p, "mask": mask(seed, fnv1a64(name), n, p)})
    uniform = []
    for seed, name, n, low, high in [(3, "layer/lora_A", 21, -0.25, 0.25), (0, "x", 4, 0.0, 1.0)]:
        uniform.append({"seed": str(seed), "stream_name": name, "low": low, "high": high, "uniform": uniforms(seed, fnv1a64(name), n, low, high)})
    path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "philox_normal.json"
    path.write_text(json.dumps({"generator": "philox4x32-10 + box-muller (tools/philox_reference.py)", "normal": cases, "uniform": uniform, "dropout_mask": masks}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
