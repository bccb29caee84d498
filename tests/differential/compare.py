#!/usr/bin/env python3
"""Decode the same inputs with `tallyman decode` and with a peer, and list where they disagree.

GS1 (element strings with GS, bracketed form, Digital Link URIs) against biip; EPC hex against
epcpy. Inputs: the valid and invalid cases under protocol/test_data/decode/ plus N random
inputs built from the rules (valid and deliberately broken). Prints counts and every
disagreement grouped by what differs, for a person to judge against the standard.
"""
import collections
import datetime
import json
import pathlib
import random
import re
import subprocess
import sys

import biip
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_messages import GS1Message
import epcpy

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
GS = "\x1d"


def mod10(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def tallyman(binary, inputs, rfid=False):
    args = [binary, "decode"] + (["--rfid"] if rfid else [])
    data = "".join(i + "\n" for i in inputs).encode("latin-1")
    out = subprocess.run(args, input=data, capture_output=True, check=False).stdout
    lines = [json.loads(l) for l in out.decode().splitlines()]
    assert len(lines) == len(inputs), (len(lines), len(inputs))
    return lines


# ---------------------------------------------------------------- GS1 inputs


def rand_gtin(rng):
    body = "".join(rng.choice("0123456789") for _ in range(13))
    check = mod10(body)
    if rng.random() < 0.1:
        check = str((int(check) + 1) % 10)
    return body + check


def rand_date(rng):
    yy = rng.randrange(100)
    mm = rng.choice([rng.randrange(1, 13)] * 9 + [0, 13])
    dd = rng.choice([rng.randrange(1, 29)] * 6 + [0, 29, 30, 31, 32])
    return f"{yy:02}{mm:02}{dd:02}"


def rand_x(rng, lo, hi):
    n = rng.randint(lo, hi)
    alphabet = CSET82 if rng.random() < 0.95 else CSET82 + "# é"
    return "".join(rng.choice(alphabet) for _ in range(n)).replace("(", "A")


def rand_elements(rng):
    els = [("01", rand_gtin(rng))]
    if rng.random() < 0.8:
        els.append((rng.choice(["17", "17", "15", "11"]), rand_date(rng)))
    if rng.random() < 0.8:
        els.append(("10", rand_x(rng, 1, 21)))
    if rng.random() < 0.5:
        els.append(("21", rand_x(rng, 1, 21)))
    if rng.random() < 0.2:
        els.append(("30", str(rng.randint(1, 99999999))))
    if rng.random() < 0.2:
        els.append(("3103", f"{rng.randrange(10**6):06}"))
    if rng.random() < 0.1:
        els.append(("7003", rand_date(rng) + f"{rng.randrange(25):02}{rng.randrange(61):02}"))
    if rng.random() < 0.1:
        els.append(("422", rng.choice(["250", "276", "840", "999", "000", "826"])))
    rng.shuffle(els[1:])
    return els


PREDEFINED = {"00": 18, "01": 14, "02": 14, "11": 6, "13": 6, "15": 6, "17": 6, "31": 6}


def to_element_string(els):
    out = ""
    for i, (ai, v) in enumerate(els):
        out += ai + v
        if i + 1 < len(els) and ai[:2] not in PREDEFINED:
            out += GS
    return out


def to_hri(els):
    return "".join(f"({ai}){v}" for ai, v in els)


def to_dl(els, rng):
    from urllib.parse import quote

    d = dict(els)
    path = "https://id.example.org" + rng.choice(["", "/p"]) + "/01/" + d["01"]
    for q in ("10", "21"):
        if q in d:
            path += f"/{q}/" + quote(d[q], safe="")
    attrs = [(ai, v) for ai, v in els if ai not in ("01", "10", "21")]
    if attrs:
        path += "?" + "&".join(f"{ai}={quote(v, safe='')}" for ai, v in attrs)
    return path


def case_inputs(rfid):
    """Inputs of the data-driven cases (both valid and invalid ones)."""
    out = []
    for f in sorted((ROOT / "protocol/test_data/decode").glob("*.cases")):
        flag = False
        for line in f.read_text().splitlines():
            if line.startswith("@rfid"):
                flag = True
            elif line.startswith("@"):
                continue
            elif line.startswith("> "):
                raw = line[2:]
                if "\\x" in raw.replace("\\x1d", "") or "\\\\" in raw:
                    flag = False
                    continue  # other escapes: leave to the unit cases
                if flag == rfid:
                    out.append(raw.replace("\\x1d", GS))
                flag = False
    return out


def peer_gs1(value):
    """(ok, [(ai, value)], expiry) from biip, or (False, message, None)."""
    try:
        if value.startswith("("):
            m = GS1Message.parse_hri(value)
        elif value.lower().startswith(("http://", "https://")):
            m = GS1DigitalLinkURI.parse(value)
        else:
            r = biip.parse(value)
            if r.gs1_message is None:
                if r.gtin is not None and value.isdigit():
                    return True, [("01", r.gtin.as_gtin_14())], None
                return False, r.gs1_message_error or r.gtin_error, None
            m = r.gs1_message
    except Exception as e:  # biip raises ParseError and friends
        return False, str(e), None
    errs = [getattr(e, "gtin_error", None) or getattr(e, "sscc_error", None) or getattr(e, "gln_error", None)
            for e in m.element_strings]
    errs = [e for e in errs if e]
    if errs:
        return False, errs[0], None
    expiry = None
    for e in m.element_strings:
        if e.ai.ai == "17" and e.date:
            expiry = e.date.isoformat()
    return True, [(e.ai.ai, e.value) for e in m.element_strings], expiry


def gs1_run(binary, rng, n):
    inputs = [i for i in case_inputs(False) if not i.startswith(("+", "*", "=", "&", "]"))]
    for _ in range(n):
        els = rand_elements(rng)
        form = rng.random()
        if form < 0.6:
            inputs.append(to_element_string(els))
        elif form < 0.8:
            inputs.append(to_hri(els))
        else:
            inputs.append(to_dl(els, rng))
    inputs = [i for i in inputs if "\n" not in i and "\r" not in i]
    ours = tallyman(binary, inputs)
    diffs = collections.defaultdict(list)
    agree = 0
    for value, got in zip(inputs, ours):
        ok, detail, expiry = peer_gs1(value)
        if "error" in got:
            if ok:
                diffs[f"tallyman rejects ({got['error']['kind']}), biip accepts"].append((value, got["error"]["message"]))
            else:
                agree += 1
            continue
        if got.get("kind") == "gtin":
            got_ais = [["01", got["gtin"]]]
        else:
            got_ais = got.get("ais") or []
        if not ok:
            diffs["tallyman accepts, biip rejects"].append((value, detail))
        elif [list(p) for p in detail] != got_ais:
            diffs["different elements"].append((value, f"biip {detail} / tallyman {got_ais}"))
        elif expiry is not None and got.get("expiry") != expiry:
            diffs["different expiry"].append((value, f"biip {expiry} / tallyman {got.get('expiry')}"))
        else:
            agree += 1
    return len(inputs), agree, diffs


# ---------------------------------------------------------------- EPC inputs


def rand_epc(rng):
    header = rng.choice([0x30, 0x31, 0x32, 0x33, 0x34, 0x36])
    bits = 208 if header == 0x36 else 96
    value = (header << (bits - 8)) | rng.getrandbits(bits - 8)
    if rng.random() < 0.7:
        # Keep the partition in range and clear the top of the company prefix so that most
        # inputs are valid, the rest exercise the overflow and partition rules.
        part = rng.randrange(7)
        value &= ~(0b111 << (bits - 14))
        value |= part << (bits - 14)
        value &= ~(0b1111 << (bits - 18))
    return f"{value:0{bits // 4}X}"


def peer_epc(hexs):
    try:
        e = epcpy.hex_to_tag_encodable(hexs)
        gtin = e.gtin() if hasattr(e, "gtin") else None
        return True, e.epc_uri, gtin
    except Exception as ex:
        return False, f"{type(ex).__name__}: {ex}", None


def epc_run(binary, rng, n):
    inputs = [i for i in case_inputs(True) if re.fullmatch(r"[0-9A-Fa-f]+", i)]
    inputs += [rand_epc(rng) for _ in range(n)]
    ours = tallyman(binary, inputs, rfid=True)
    diffs = collections.defaultdict(list)
    agree = 0
    for value, got in zip(inputs, ours):
        ok, uri, gtin = peer_epc(value)
        if "error" in got:
            if ok:
                diffs[f"tallyman rejects ({got['error']['kind']}), epcpy accepts"].append((value, got["error"]["message"]))
            else:
                agree += 1
        elif not ok:
            diffs["tallyman accepts, epcpy rejects"].append((value, uri))
        elif got.get("pure_identity") != uri:
            diffs["different pure identity"].append((value, f"epcpy {uri} / tallyman {got.get('pure_identity')}"))
        elif gtin and got.get("gtin") != gtin:
            diffs["different GTIN"].append((value, f"epcpy {gtin} / tallyman {got.get('gtin')}"))
        else:
            agree += 1
    return len(inputs), agree, diffs


def report(name, total, agree, diffs):
    print(f"\n## {name}: {total} inputs, {agree} agree, {total - agree} disagree")
    for what, rows in sorted(diffs.items(), key=lambda kv: -len(kv[1])):
        print(f"\n### {what} ({len(rows)})")
        for value, detail in rows[:8]:
            print(f"- `{value.encode('unicode_escape').decode()}` — {detail}")
        if len(rows) > 8:
            print(f"- … {len(rows) - 8} more")


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 20261124
    rng = random.Random(seed)
    print(f"# tallyman decode vs biip {biip.__version__} and epcpy; {n} random inputs each, seed {seed}, today {datetime.date.today()}")
    report("GS1 vs biip", *gs1_run(binary, rng, n))
    report("EPC vs epcpy", *epc_run(binary, rng, n))


if __name__ == "__main__":
    main()
