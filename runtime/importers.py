"""Per-request timing files from other tools turned into session logs that taskclock can replay.

vLLM's serving benchmark (`vllm bench serve --save-result --save-detailed`, formerly benchmark_serving.py)
writes one JSON object whose per-request lists line up by index: ``ttfts`` (s), ``itls`` (a list of gaps
in s per request, one per chunk after the first), ``output_lens``, ``input_lens``, ``generated_texts``,
``errors`` and, in newer versions, ``e2els``. GenAI-Perf's ``profile_export.json`` (perf_analyzer's format)
holds ``experiments[].requests[]``, each with a ``timestamp`` and ``response_timestamps`` in ns and the
matching ``response_outputs``. Each request's send time (vLLM's ``start_times``, GenAI-Perf's ``timestamp``) is
kept as ``arrival_s``, so `taskclock load --trace` can replay the schedule. Field mapping: docs/REPLAY.md.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from . import metrics, storage, values
from .errors import DataError
from .events import Done, Event, Submitted, Token
from .record import turn_fields
from .replay import finite_number, placeholder_for, replayable, split_text, whole_count
from .sessions import to_jsonl
from .untrusted import parse_json, safe_line

FORMATS = ("vllm", "genai-perf")
REQUIRED = ("ttfts", "itls", "output_lens")


def _lists(data: dict[str, Any], source: str) -> dict[str, list]:
    missing = [key for key in REQUIRED if not isinstance(data.get(key), list)]
    if missing:
        raise DataError(f"{source} has no per-request {', '.join(missing)}",
                        "pass a result saved with `vllm bench serve --save-result --save-detailed`")
    size = len(data["ttfts"])
    lists = {key: value for key, value in data.items() if isinstance(value, list) and len(value) == size}
    short = [key for key in REQUIRED if key not in lists]
    if short:
        raise DataError(f"{source}: {', '.join(short)} do not have one entry per request like ttfts",
                        "the file is damaged")
    return lists


def _request_events(ttft: float, gaps: list[float], output_len: int, input_len: int | None, text: str,
                    e2el: float | None) -> list[Event]:
    """One Token per chunk: the first at ``ttft``, each next one a gap later; Done at e2el (else the last chunk).
    Done carries ``output_len``, so decode_tps is (output_len - 1) over the chunks' span, as vLLM's TPOT."""
    times = [ttft]
    for gap in gaps:
        times.append(times[-1] + gap)
    token_ns = [round(t * metrics.NS) for t in times]
    end = max(round(e2el * metrics.NS) if e2el is not None else 0, token_ns[-1])
    pieces = split_text(text, len(token_ns))
    return [Submitted(0), *(Token(t, p) for t, p in zip(token_ns, pieces, strict=True)),
            Done(end, "eos", input_tokens=input_len, output_tokens=output_len)]


def _vllm_date(value: Any) -> str | None:
    """vLLM stamps results "%Y%m%d-%H%M%S" (local time); session records use ISO 8601."""
    try:
        return datetime.strptime(value, "%Y%m%d-%H%M%S").isoformat() if isinstance(value, str) else None
    except ValueError:
        return None


def vllm_records(data: Any, source: str) -> tuple[list[dict[str, Any]], int, bool]:
    """Session records for every successful request; also how many were skipped and whether text was made up."""
    if not isinstance(data, dict):
        raise DataError(f"{source} is not a vLLM benchmark result (not a JSON object)", "pass the saved result file")
    lists = _lists(data, source)
    texts, errors, inputs, e2els = (lists.get(k, []) for k in ("generated_texts", "errors", "input_lens", "e2els"))
    model = safe_line(data.get("model_id") or "vllm")
    when = _vllm_date(data.get("date"))
    arrivals = _offsets([finite_number(t) for t in lists.get("start_times", [])])
    records, skipped, placeholder_any = [], 0, False
    for index, (ttft, gaps, output_len) in enumerate(zip(lists["ttfts"], lists["itls"], lists["output_lens"],
                                                         strict=True)):
        output_len = whole_count(output_len)
        e2el = finite_number(e2els[index]) if e2els else None  # not a number: left out, as vLLM's older files
        failed = bool(errors[index]) if errors else False
        # seconds a recorded turn may take (values.RECORDED_MAX_S): 1e300 would overflow the clock in ns
        times_ok = values.recorded(ttft) and isinstance(gaps, list) and all(map(values.recorded, gaps)) and \
            (e2el is None or values.recorded(e2el))
        if failed or not times_ok or not output_len or output_len > values.TOKENS_MAX:
            skipped += 1
            continue
        text = texts[index] if texts and isinstance(texts[index], str) else None
        placeholder_any |= text is None
        events = _request_events(ttft, gaps, output_len,
                                 whole_count(inputs[index]) if inputs else None,
                                 text if text is not None else placeholder_for(output_len), e2el)
        records.append(_record(events, model, "vllm-bench", "", source, index, text is None, when,
                               arrivals[index] if arrivals else None))
    return records, skipped, placeholder_any


def _offsets(times: list[float | None]) -> list[float | None]:
    """Each request's arrival in seconds after the first one's (None where its time is not a number), or [] where
    the file holds no times: what `taskclock load --trace` replays."""
    known = [t for t in times if t is not None]
    if not known:
        return []
    first = min(known)
    return [None if t is None else t - first for t in times]


def _record(events: list[Event], model: str, backend: str, prompt: str, source: str, index: int,
            placeholder: bool, when: str | None = None, arrival_s: float | None = None) -> dict[str, Any]:
    """An imported request as a session record: the one turn record with a session's context (as
    runtime.sessions.turn_record writes it), plus where it came from, whether its text is placeholder and, where
    the tool recorded it, when the request was sent (``arrival_s``, after the run's first)."""
    return {
        "kind": "import", "time": when or datetime.now().astimezone().isoformat(timespec="seconds"),
        **turn_fields(model, backend, events), "prompt": prompt, "messages": [], "params": {},
        "cold": None,  # the tool that measured it did not say
        "source": safe_line(Path(source).name), "request": index, "placeholder_text": placeholder,
        **({"arrival_s": round(arrival_s, 6)} if arrival_s is not None else {}),
    }


def _chunk_text(output: Any) -> str | None:
    """The text of one GenAI-Perf response: Triton's ``text_output``, or an OpenAI SSE ``response`` line's
    delta (chat) or text (completions); None when it carries none (role-only chunk, usage, ``[DONE]``)."""
    if not isinstance(output, dict):
        return None
    if isinstance(output.get("text_output"), str):
        return output["text_output"] or None
    line = output.get("response")
    if not isinstance(line, str) or not line.strip().startswith("data:"):
        return None
    try:
        choice = parse_json(line.strip()[len("data:"):])["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    text = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
    text = text if isinstance(text, str) else choice.get("text") if isinstance(choice, dict) else None
    return text if isinstance(text, str) and text else None


def genai_perf_records(data: Any, source: str) -> tuple[list[dict[str, Any]], int, bool]:
    """Session records for every request of every experiment that has responses; one Token per response
    that carries text (per response, if none does), so counts are chunks: the file stores no token counts."""
    experiments = data.get("experiments") if isinstance(data, dict) else None
    if not isinstance(experiments, list):
        raise DataError(f"{source} is not a GenAI-Perf profile export (no experiments list)",
                        "pass the profile_export.json of a GenAI-Perf run")
    requests = [r for e in experiments if isinstance(e, dict) and isinstance(e.get("requests"), list)
                for r in e["requests"]]
    records, skipped, placeholder_any = [], 0, False
    arrivals = _offsets([(stamp / 1e9 if (stamp := whole_count(r.get("timestamp"))) is not None else None)
                         if isinstance(r, dict) else None for r in requests])
    for index, request in enumerate(requests):
        start = whole_count(request.get("timestamp")) if isinstance(request, dict) else None
        stamps = request.get("response_timestamps") if isinstance(request, dict) else None
        if start is None or not isinstance(stamps, list) or not stamps or \
                any(whole_count(t) is None or t < start for t in stamps):
            skipped += 1
            continue
        outputs = request.get("response_outputs")
        texts = [_chunk_text(o) for o in outputs] if isinstance(outputs, list) and len(outputs) == len(stamps) \
            else [None] * len(stamps)
        placeholder = not any(texts)
        placeholder_any |= placeholder
        if placeholder:
            chunks = list(zip(stamps, split_text(placeholder_for(len(stamps)), len(stamps)), strict=True))
        else:
            chunks = [(t, text) for t, text in zip(stamps, texts, strict=True) if text]
        events: list[Event] = [Submitted(0), *(Token(t - start, text) for t, text in chunks),
                               Done(max(stamps) - start, "eos")]
        inputs = request.get("request_inputs")
        prompt = inputs.get("text_input") if isinstance(inputs, dict) else None
        records.append(_record(events, "genai-perf", "genai-perf", prompt if isinstance(prompt, str) else "",
                               source, index, placeholder, arrival_s=arrivals[index]))
    return records, skipped, placeholder_any


IMPORTERS = {"vllm": vllm_records, "genai-perf": genai_perf_records}


def import_file(path: Path, fmt: str, out: Path) -> tuple[int, int, bool]:
    """Write ``path`` (a ``fmt`` timing file) as the new session log ``out`` (its folder made if missing); never
    replaces a file.
    Returns (turns written, requests skipped, whether any text is placeholder)."""
    if fmt not in FORMATS:
        raise DataError(f"unknown import format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    path, out = Path(path), Path(out)
    if out.exists():
        raise DataError(f"{safe_line(out)} already exists", "name a new file with -o; nothing was replaced")
    data = storage.read_json(path, "timing file", storage.JSON_MAX_BYTES)
    found, skipped, placeholder = IMPORTERS[fmt](data, str(path))
    records = [record for record in found if replayable(record)]  # what replay would refuse is not written
    skipped += len(found) - len(records)
    if not records:
        raise DataError(f"{safe_line(path)} has no successful request to import",
                        "pass a result with completed requests")
    storage.ensure_dir(out.parent)  # missing folders are made, as bench --out and --sessions make theirs
    storage.write_atomic(out, to_jsonl(records), replace=False)
    return len(records), skipped, placeholder
