"""genreflow serve: a real server on 127.0.0.1 in a subprocess, real uploads over HTTP.

The model is a real one, trained for one epoch on a tiny demo data set
(``demo_model.tiny_model``, the session fixture ``demo_model``); its accuracy does not matter
here, only that it loads and answers.

Four servers, each started once for the module: ``server`` (no authentication, small upload
limits), ``auth_server`` (a token from ``--token-file``), ``tls_server`` (HTTPS with a
certificate from a throwaway CA, token from ``GENREFLOW_API_TOKEN``) and ``open_server``
(``--host 0.0.0.0 --no-auth``, ``serve.max_pending=2``). Checks that need to see what the
server does before it reads a body speak HTTP over a raw socket.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from genreflow.cli import main
from tests.support.demo_model import model_labels, write_clip
from tests.support.server_process import start_server, stop_server

SR = 22050
#: Tiny limits so that the "too large" and "too long" cases stay small.
MAX_UPLOAD_MB = 0.25
MAX_AUDIO_SECONDS = 20


# --------------------------------------------------------------------------- shared helpers


@pytest.fixture(scope="module")
def model(demo_model) -> Path:
    return demo_model


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    limits = [
        f"serve.max_upload_mb={MAX_UPLOAD_MB}",
        f"serve.max_audio_seconds={MAX_AUDIO_SECONDS}",
    ]
    server = start_server(model, root, *(arg for s in limits for arg in ("--set", s)))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def token() -> str:
    return f"test-{secrets.token_urlsafe(16)}"


@pytest.fixture(scope="module")
def auth_server(model, token, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-auth")
    token_file = root / "token"
    token_file.write_text(f"  {token}\n")  # the whitespace an editor leaves is not the token
    server = start_server(model, root, "--token-file", str(token_file))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def tls_server(model, token, tmp_path_factory):
    import trustme

    root = tmp_path_factory.mktemp("serve-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(root / "ca.pem")
    cert.private_key_pem.write_to_path(root / "key.pem")
    cert.cert_chain_pems[0].write_to_path(root / "cert.pem")
    tls = ["--ssl-certfile", str(root / "cert.pem"), "--ssl-keyfile", str(root / "key.pem")]
    trust = ssl.create_default_context(cafile=root / "ca.pem")
    server = start_server(model, root, *tls, env={"GENREFLOW_API_TOKEN": token}, verify=trust)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def open_server(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-open")
    server = start_server(
        model, root, "--host", "0.0.0.0", "--no-auth", "--set", "serve.max_pending=2"
    )
    try:
        yield server
    finally:
        stop_server(server)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-clips")
    return {
        # 4 s: segments at 0 and 1.5 s, the second padded.
        "wav": write_clip(root / "clip.wav", seconds=4.0, subtype="PCM_16"),
        # 2.5 s stereo Ogg Vorbis at 44.1 kHz: shorter than one segment, so padded.
        "ogg": write_clip(root / "clip.ogg", seconds=2.5, sr=44100, channels=2, format="OGG"),
    }


def post_file(
    url: str,
    name: str,
    data: bytes,
    content_type: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **params,
):
    file = (name, data) if content_type is None else (name, data, content_type)
    return httpx.post(
        f"{url}/predict", files={"file": file}, params=params, headers=headers, timeout=60
    )


def raw_request(
    url: str,
    head: str,
    body: Iterable[bytes] = (),
    *,
    pause: float = 0.0,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], dict, int]:
    """Send ``head`` (request line and headers), then ``body`` piece by piece, ``pause`` s apart,
    stopping as soon as the server answers.

    Returns the status, the response headers (lower-case names), the JSON body and how many
    bytes of ``body`` were sent. No answer within ``timeout`` s of the last piece raises
    :class:`TimeoutError`: the server waited for a body it should not have needed.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        sent = 0
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break  # answered already
            sock.sendall(piece)
            sent += len(piece)
            time.sleep(pause)
        data = b""
        while b"\r\n\r\n" not in data:
            got = sock.recv(65536)
            assert got, f"connection closed without an answer: {data!r}"
            data += got
        header_block, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = header_block.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        while len(rest) < int(headers["content-length"]):
            rest += sock.recv(65536)
    return int(status_line.split()[1]), headers, json.loads(rest), sent


def predict_head(url: str, *, extra: str = "", length: int | None = None) -> str:
    """A ``POST /predict`` request head for a multipart body (chunked unless ``length``)."""
    host = url.split("://")[1]
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\n{framing}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{extra}\r\n"
    )


def scrape(url: str, **kw) -> dict[tuple, float]:
    """``GET /metrics``, parsed: ``{(sample name, sorted label items): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(f"{url}/metrics", timeout=30, **kw)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def metric(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def check_prediction(record: dict, labels: list[str], *, top_k: int) -> None:
    assert record["label"] in labels
    assert set(record["probabilities"]) == set(labels)
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    top = record["top"]
    assert len(top) == top_k and top[0]["label"] == record["label"]
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    assert all(record["probabilities"][t["label"]] == t["probability"] for t in top)


# --------------------------------------------------------------------------- tests


def test_wav_upload_with_segment_detail(server, clips, model):
    labels = model_labels(model)
    response = post_file(
        server.url, "clip.wav", clips["wav"].read_bytes(), "audio/wav", segments="true"
    )
    assert response.status_code == 200, response.text
    record = response.json()
    check_prediction(record, labels, top_k=3)  # serve.top_k default
    assert record["file"] == "clip.wav"
    assert record["duration"] == pytest.approx(4.0, abs=0.01)
    assert record["padded"] is True and record["n_segments"] == 2
    segments = record["segments"]
    assert [s["offset"] for s in segments] == pytest.approx([0.0, 1.5], abs=0.02)
    for segment in segments:
        assert sum(segment["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    # The clip's probabilities are the mean of its segments'.
    for label in labels:
        mean = np.mean([s["probabilities"][label] for s in segments])
        assert record["probabilities"][label] == pytest.approx(mean, abs=1e-5)


def test_ogg_upload_at_another_rate(server, clips, model):
    response = post_file(server.url, "clip.ogg", clips["ogg"].read_bytes(), top_k=2)
    assert response.status_code == 200, response.text
    record = response.json()
    check_prediction(record, model_labels(model), top_k=2)
    assert record["duration"] == pytest.approx(2.5, abs=0.05)
    assert record["padded"] is True and record["n_segments"] == 1
    assert "segments" not in record  # only with ?segments=true


def test_genres_health_and_docs(server, model):
    assert httpx.get(f"{server.url}/genres").json() == {"genres": model_labels(model)}
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok"
    assert Path(health["model"]) == model.resolve()
    assert health["labels"] == len(model_labels(model))
    assert health["uptime_seconds"] > 0
    assert health["limits"]["max_upload_bytes"] == int(MAX_UPLOAD_MB * 1024 * 1024)
    assert health["limits"]["max_pending"] == 16 and health["pending"] == 0
    assert health["threads"]["intra_op"] == 1
    assert "auth: none" in server.log_text()
    assert set(health["requests"]) == {"served", "rejected"}
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    spec = httpx.get(f"{server.url}/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    missing = httpx.get(f"{server.url}/nowhere")
    assert missing.status_code == 404 and set(missing.json()) == {"error", "detail"}


BOUNDARY = "genreflowtestboundary"


def _multipart_ends(name: str, boundary: str = BOUNDARY) -> tuple[bytes, bytes]:
    """What comes before and after the file's bytes in a one-file multipart body."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def _multipart(name: str, data: bytes, boundary: str = BOUNDARY) -> bytes:
    head, tail = _multipart_ends(name, boundary)
    return head + data + tail


def _chunked(body: bytes, size: int = 16384):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def bad_request(case: str, url: str, tmp_path: Path) -> httpx.Response:
    """Send one kind of bad upload; returns the response."""
    noise = np.random.default_rng(1).bytes(4096)
    too_big = np.random.default_rng(2).bytes(int(MAX_UPLOAD_MB * 1024 * 1024) + 50_000)
    if case == "empty":
        return post_file(url, "empty.wav", b"", "audio/wav")
    if case == "random-bytes":
        return post_file(url, "noise.wav", noise, "audio/wav")
    if case == "text-file":
        return post_file(url, "notes.txt", b"not audio at all\n", "text/plain")
    if case == "wav-as-text":
        return post_file(url, "clip.wav", noise, "text/plain")
    if case == "json-body":
        return httpx.post(f"{url}/predict", json={"file": "clip.wav"})
    if case == "no-file-field":
        return httpx.post(f"{url}/predict", files={"audio": ("clip.wav", noise, "audio/wav")})
    if case == "oversize":
        return post_file(url, "big.wav", too_big, "audio/wav")
    if case == "oversize-chunked":
        # No Content-Length: the limit must bite while the body streams in.
        boundary = "genreflowtestboundary"
        return httpx.post(
            f"{url}/predict",
            content=_chunked(_multipart("big.wav", too_big, boundary)),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            timeout=60,
        )
    if case == "too-long":
        # 25 s of 8-bit 8 kHz audio: a small file, but longer than serve.max_audio_seconds.
        path = write_clip(tmp_path / "long.wav", seconds=25, sr=8000, subtype="PCM_U8")
        assert path.stat().st_size < MAX_UPLOAD_MB * 1024 * 1024
        return post_file(url, "long.wav", path.read_bytes(), "audio/wav")
    if case == "mp3-too-long":
        # Its header guesses under 20 s, the audio goes on for 25 s: refused while decoding.
        from tests.support.mp3_files import write_mp3_without_info_frame

        path = write_mp3_without_info_frame(tmp_path / "long.mp3", seconds=25)
        assert sf.info(path).duration < MAX_AUDIO_SECONDS
        return post_file(url, "long.mp3", path.read_bytes(), "audio/mpeg")
    if case == "mp3-noise":
        return post_file(url, "noise.mp3", noise, "audio/mpeg")
    if case == "silent":
        sf.write(tmp_path / "silent.wav", np.zeros(4 * SR, np.float32), SR)
        return post_file(url, "silent.wav", (tmp_path / "silent.wav").read_bytes(), "audio/wav")
    if case == "too-short":
        path = write_clip(tmp_path / "blip.wav", seconds=0.1)
        return post_file(url, "blip.wav", path.read_bytes(), "audio/wav")
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("empty", 400, ("empty.wav", "empty")),
        ("random-bytes", 422, ("noise.wav", "cannot decode")),
        ("text-file", 415, ("notes.txt", ".txt")),
        ("wav-as-text", 415, ("clip.wav", "text/plain")),
        ("json-body", 415, ("multipart/form-data", "application/json")),
        ("no-file-field", 400, ("'file'",)),
        ("oversize", 413, ("serve.max_upload_mb",)),
        ("oversize-chunked", 413, ("big.wav", "serve.max_upload_mb")),
        ("too-long", 413, ("long.wav", "too long", "25.0 s")),
        ("mp3-too-long", 413, ("long.mp3", "too long: more than 20 s")),
        ("mp3-noise", 422, ("noise.mp3", "cannot decode: not a recognised audio format")),
        ("silent", 422, ("silent.wav", "silent: RMS -inf dBFS (threshold -60 dBFS)")),
        ("too-short", 422, ("blip.wav", "too short: 0.10 s (minimum 1 s)")),
    ],
)
def test_bad_uploads_get_a_4xx_json_error(server, tmp_path, case, status, words):
    response = bad_request(case, server.url, tmp_path)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"]
    for word in words:
        assert word in body["detail"], body
    assert str(server.temp_root) not in body["detail"]  # our temp paths stay private
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def test_a_chunked_upload_over_the_limit_is_refused_before_it_is_all_sent(server):
    # No Content-Length: only counting the bytes as they arrive can catch it. The body would
    # be 50 times the limit; the answer must come while most of it is still unsent.
    head, _ = _multipart_ends("huge.wav")
    piece = 64 * 1024
    total = 50 * int(MAX_UPLOAD_MB * 1024 * 1024)
    chunks = [head, *([b"\0" * piece] * (total // piece))]
    status, _, body, sent = raw_request(
        server.url,
        predict_head(server.url),
        (f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks),
        pause=0.01,
    )
    assert status == 413 and body["error"] == "upload too large", body
    assert "huge.wav" in body["detail"] and "serve.max_upload_mb" in body["detail"]
    assert sent < total / 2, f"the answer came after {sent} of {total} bytes"
    assert httpx.get(f"{server.url}/health").json()["pending"] == 0


def test_allow_unusable_predicts_a_silent_upload_flagged(server, tmp_path, model):
    sf.write(tmp_path / "silent.wav", np.zeros(4 * SR, np.float32), SR)
    data = (tmp_path / "silent.wav").read_bytes()
    refused = post_file(server.url, "silent.wav", data, "audio/wav")
    assert refused.status_code == 422 and refused.json()["error"] == "silent audio"
    response = post_file(server.url, "silent.wav", data, "audio/wav", allow_unusable="true")
    assert response.status_code == 200, response.text
    record = response.json()
    check_prediction(record, model_labels(model), top_k=3)
    assert record["unusable"] == "silent: RMS -inf dBFS (threshold -60 dBFS)"
    normal = post_file(
        server.url, "clip.wav", write_clip(tmp_path / "c.wav", seconds=4).read_bytes()
    )
    assert "unusable" not in normal.json() and normal.json()["notes"] == []


def test_misjudged_mp3s_are_predicted_with_notes_and_keep_decoder_chatter_out_of_the_log(
    server, tmp_path, model
):
    from tests.support.mp3_files import (
        is_decoder_chatter,
        write_mp3_with_glitch,
        write_mp3_without_info_frame,
    )

    labels = model_labels(model)
    tagged = write_mp3_without_info_frame(tmp_path / "tagged.mp3", seconds=6, tag_bytes=150_000)
    stripped = write_mp3_without_info_frame(tmp_path / "stripped.mp3", seconds=6)
    glitch = write_mp3_with_glitch(tmp_path / "glitch.mp3", seconds=6)
    for path in (tagged, stripped):
        response = post_file(server.url, path.name, path.read_bytes(), "audio/mpeg")
        assert response.status_code == 200, response.text
        record = response.json()
        check_prediction(record, labels, top_k=3)
        assert 6.0 <= record["duration"] < 6.15
        (note,) = record["notes"]
        assert note.startswith("decoded ") and "the MP3 header estimated" in note
    # Several uploads at once: the worker's decoder messages stay out of the log, the
    # access log lines written meanwhile stay in it.
    before = server.log_text().count('"POST /predict')
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(
            pool.map(
                lambda i: post_file(server.url, "glitch.mp3", glitch.read_bytes(), "audio/mpeg"),
                range(8),
            )
        )
    assert [r.status_code for r in responses] == [200] * 8
    assert responses[0].json()["notes"] == []
    time.sleep(0.5)  # let the last access lines reach the log
    log = server.log_text()
    assert [line for line in log.splitlines() if is_decoder_chatter(line)] == []
    assert log.count('"POST /predict') == before + 8


def test_concurrent_requests_all_succeed_and_leave_no_files(server, clips, model):
    labels = model_labels(model)
    before = httpx.get(f"{server.url}/health").json()["requests"]
    uploads = [(p.name, p.read_bytes()) for p in (clips["wav"], clips["ogg"])]

    def one(i: int) -> httpx.Response:
        name, data = uploads[i % 2]
        return client.post(f"{server.url}/predict", files={"file": (name, data)})

    with (
        httpx.Client(timeout=120, limits=httpx.Limits(max_connections=6)) as client,
        ThreadPoolExecutor(max_workers=6) as pool,
    ):
        responses = list(pool.map(one, range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    for r in responses:
        check_prediction(r.json(), labels, top_k=3)
    # The same upload gets the same answer whatever else was running.
    by_file = {}
    for r in responses:
        by_file.setdefault(r.json()["file"], []).append(r.json()["probabilities"])
    for answers in by_file.values():
        for answer in answers[1:]:
            assert answer == pytest.approx(answers[0], abs=1e-5)
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["in_flight"] == 0
    assert health["requests"]["served"] == before["served"] + 20
    assert list(server.upload_dir.iterdir()) == []


def test_a_client_that_disconnects_mid_upload_leaves_nothing_behind(server, clips):
    import socket

    host, port = server.url.removeprefix("http://").split(":")
    body = _multipart("clip.wav", clips["wav"].read_bytes())
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: multipart/form-data; boundary=genreflowtestboundary\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.3)  # the server has started writing the upload
    deadline = time.monotonic() + 10
    while list(server.upload_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(server.upload_dir.iterdir()) == []
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def test_upload_dir_is_empty_after_errors_and_removed_at_shutdown(server):
    # Runs last: every earlier request (good or refused) has cleaned up after itself.
    upload_dir = server.upload_dir
    assert list(upload_dir.iterdir()) == []
    # uvicorn shuts down gracefully, then re-raises SIGTERM: exit status -15 (or 0).
    assert stop_server(server) in (0, -signal.SIGTERM)
    assert not upload_dir.exists()
    log = server.log_text()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log and " 500 " not in log


def test_temp_dirs_of_dead_servers_are_removed(tmp_path, monkeypatch):
    import tempfile

    from genreflow.serve import make_temp_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])  # a process id that no longer runs
    gone.wait()
    stale = tmp_path / f"genreflow-serve-{gone.pid}-abc"
    (stale / "sub").mkdir(parents=True)
    alive = tmp_path / f"genreflow-serve-{os.getpid()}-def"  # this process: still running
    alive.mkdir()
    fresh = make_temp_dir()
    assert fresh.parent == tmp_path and fresh.name.startswith(f"genreflow-serve-{os.getpid()}-")
    assert not stale.exists() and alive.exists()


def test_serve_refuses_a_folder_that_is_not_a_model(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert "no genreflow.json" in capsys.readouterr().err


def test_uploads_ready_together_share_one_model_call_and_keep_their_own_answers(model, tmp_path):
    import asyncio
    import threading

    from genreflow.prediction.predictor import Predictor
    from genreflow.serve import ApiError, InferenceWorker, Upload

    predictor = Predictor(model)
    genres = ["rock", "jazz", "metal", "classical", "disco", "blues"]
    paths = [
        write_clip(tmp_path / f"{g}.wav", seconds=2.0 + i, genre=g, subtype="PCM_16")
        for i, g in enumerate(genres)
    ]
    alone = [predictor.predict_file(p) for p in paths]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav file")
    worker = InferenceWorker(predictor, max_audio_seconds=60, prepare_threads=2)
    release = threading.Event()

    class CountedQueue(list):
        # The first clip ready may leave the queue at once (its call waits behind the held
        # thread), so count arrivals, not the queue's length.
        arrived = 0

        def append(self, item):
            self.arrived += 1
            super().append(item)

    worker._waiting = CountedQueue()

    async def scenario():
        loop = asyncio.get_running_loop()
        # Hold the model thread, so every upload is prepared before the first model call.
        held = loop.run_in_executor(worker._model, release.wait, 60)
        uploads = [
            Upload(filename=p.name, content_type=None, path=p, size=p.stat().st_size)
            for p in [*paths, broken]
        ]
        tasks = [asyncio.ensure_future(worker.predict(u)) for u in uploads]
        deadline = time.monotonic() + 60
        while worker._waiting.arrived < len(paths) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        release.set()
        await held
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(scenario())
    finally:
        release.set()
        worker.close()
    *answers, refused = results
    assert isinstance(refused, ApiError) and refused.status == 422, refused
    # The first clip ready starts a call (queued behind the held thread); the rest share one.
    assert worker.batches <= 2 and worker.batched_clips == len(paths)
    for prediction, single, path in zip(answers, alone, paths, strict=True):
        assert prediction.source == path.name
        assert len(prediction.offsets) == len(single.offsets)
        np.testing.assert_allclose(prediction.probabilities, single.probabilities, atol=1e-5)
        np.testing.assert_allclose(
            prediction.segment_probabilities, single.segment_probabilities, atol=1e-5
        )
        assert prediction.seconds["queue"] > 0 and prediction.seconds["model"] > 0


# --------------------------------------------------------------------------- authentication


def test_without_the_token_every_path_but_health_is_refused(auth_server, clips):
    url = auth_server.url
    data = clips["wav"].read_bytes()
    wrong = [
        {},
        bearer("not-the-token"),
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ]
    for headers in wrong:
        answers = [
            post_file(url, "clip.wav", data, "audio/wav", headers=headers),
            *(
                httpx.get(f"{url}{path}", headers=headers)
                for path in ("/genres", "/metrics", "/docs", "/openapi.json", "/nowhere")
            ),
        ]
        for response in answers:
            assert response.status_code == 401, (response.request.url, headers)
            assert response.json()["error"] == "unauthorized"
            assert response.json()["detail"]
            assert response.headers["www-authenticate"].startswith("Bearer")
    # /health stays open for load balancers.
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert "auth: bearer token" in auth_server.log_text()


def test_the_right_token_opens_every_path(auth_server, token, clips, model):
    url = auth_server.url
    for headers in (bearer(token), {"Authorization": f"bearer {token}"}):
        assert httpx.get(f"{url}/genres", headers=headers).json() == {"genres": model_labels(model)}
        for path in ("/docs", "/openapi.json", "/metrics"):
            assert httpx.get(f"{url}{path}", headers=headers).status_code == 200, path
        response = post_file(
            url, "clip.wav", clips["wav"].read_bytes(), "audio/wav", headers=headers
        )
        assert response.status_code == 200, response.text
        check_prediction(response.json(), model_labels(model), top_k=3)


def test_unauthenticated_uploads_never_reach_the_model(auth_server, clips):
    url = auth_server.url
    before = httpx.get(f"{url}/health").json()
    data = clips["wav"].read_bytes()
    with (
        httpx.Client(timeout=60) as client,
        ThreadPoolExecutor(max_workers=4) as pool,
    ):
        statuses = list(
            pool.map(
                lambda i: (
                    client.post(
                        f"{url}/predict", files={"file": ("clip.wav", data, "audio/wav")}
                    ).status_code
                ),
                range(60),
            )
        )
    assert statuses == [401] * 60
    # Refused from the request head alone: a 5 MB body announced and never sent.
    status, headers, body, _ = raw_request(url, predict_head(url, length=5_000_000), timeout=5)
    assert status == 401 and body["error"] == "unauthorized" and "www-authenticate" in headers
    after = httpx.get(f"{url}/health").json()
    assert after["batches"] == before["batches"]  # the model never ran
    assert after["requests"]["served"] == before["requests"]["served"]
    assert after["requests"]["rejected"] == before["requests"]["rejected"] + 61
    assert list(auth_server.upload_dir.iterdir()) == []


def test_metrics_count_requests_by_route_status_and_reason(auth_server, token, clips, tmp_path):
    url, auth = auth_server.url, bearer(token)
    before = scrape(url, headers=auth)
    wav = clips["wav"].read_bytes()  # 4 s: 2 segments
    for _ in range(2):
        assert post_file(url, "clip.wav", wav, "audio/wav", headers=auth).status_code == 200
    refused = post_file(url, "notes.txt", b"not audio\n", "text/plain", headers=auth)
    assert refused.status_code == 415
    for _ in range(3):
        assert post_file(url, "clip.wav", wav, "audio/wav").status_code == 401
    assert httpx.get(f"{url}/nowhere", headers=auth).status_code == 404
    assert httpx.get(f"{url}/genres", headers=auth).status_code == 200
    after = scrape(url, headers=auth)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    requests = "genreflow_requests_total"
    assert delta(requests, route="/predict", method="POST", status="200") == 2
    assert delta(requests, route="/predict", method="POST", status="415") == 1
    assert delta(requests, route="/predict", method="POST", status="401") == 3
    assert delta(requests, route="other", method="GET", status="404") == 1  # bounded labels
    assert delta(requests, route="/genres", method="GET", status="200") == 1
    assert delta(requests, route="/metrics", method="GET", status="200") == 1  # the 1st scrape
    assert all(("route", "/nowhere") not in labels for _, labels in after)
    assert delta("genreflow_request_seconds_count", route="/predict") == 6
    assert delta("genreflow_request_seconds_sum", route="/predict") > 0
    rejected = "genreflow_requests_rejected_total"
    assert delta(rejected, reason="unauthorized") == 3
    assert delta(rejected, reason="client_error") == 1
    assert delta(rejected, reason="not_found") == 1
    assert delta(rejected, reason="overloaded") == 0
    # One model call per accepted upload here (they came one at a time), 2 segments each.
    assert delta("genreflow_model_batch_clips_count") == 2
    assert delta("genreflow_model_batch_clips_sum") == 2
    assert delta("genreflow_model_batch_segments_sum") == 4
    assert metric(after, "genreflow_uploads_pending") == 0


def test_serve_refuses_an_exposed_address_without_a_token_before_loading_tensorflow(model):
    check = (
        "import sys; from genreflow.cli import main; rc = main(sys.argv[1:]); "
        "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow'); "
        "sys.exit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if k != "GENREFLOW_API_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-c", check, "serve", str(model), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == "no tensorflow"
    assert done.stderr.strip() == (
        "genreflow serve: error: --host 0.0.0.0 is reachable from other machines and no token "
        "is set: give --token-file FILE or GENREFLOW_API_TOKEN, or --no-auth to serve without "
        "authentication"
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty-token-file", "--token-file {tmp}/token: the token is empty"),
        ("missing-token-file", "--token-file {tmp}/absent: cannot read the token"),
        ("empty-token-variable", "GENREFLOW_API_TOKEN: the token is empty"),
        ("token-with-space", "--token-file {tmp}/token: the token must be printable ASCII"),
        ("no-auth-and-token", "--no-auth contradicts the token of GENREFLOW_API_TOKEN"),
        ("certfile-alone", "--ssl-certfile needs --ssl-keyfile too"),
        ("missing-keyfile", "--ssl-keyfile {tmp}/key.pem: no such file"),
        ("not-a-certificate", "--ssl-certfile {tmp}/token / --ssl-keyfile {tmp}/token: cannot"),
    ],
)
def test_bad_token_and_tls_options_are_refused_naming_the_file(
    case, message, tmp_path, capsys, monkeypatch
):
    # tmp_path is not a model: each check must fire before the model is even looked at.
    token_file = tmp_path / "token"
    token_file.write_text("token")
    monkeypatch.delenv("GENREFLOW_API_TOKEN", raising=False)
    args = {
        "empty-token-file": ["--token-file", str(token_file)],
        "missing-token-file": ["--token-file", str(tmp_path / "absent")],
        "empty-token-variable": [],
        "token-with-space": ["--token-file", str(token_file)],
        "no-auth-and-token": ["--no-auth"],
        "certfile-alone": ["--ssl-certfile", str(token_file)],
        "missing-keyfile": ["--ssl-certfile", str(token_file), "--ssl-keyfile", "key.pem"],
        "not-a-certificate": ["--ssl-certfile", str(token_file), "--ssl-keyfile", str(token_file)],
    }[case]
    if case == "empty-token-file":
        token_file.write_text(" \n")
    if case == "token-with-space":
        token_file.write_text("two words\n")
    if case == "empty-token-variable":
        monkeypatch.setenv("GENREFLOW_API_TOKEN", "")
    if case == "no-auth-and-token":
        monkeypatch.setenv("GENREFLOW_API_TOKEN", "token")
    if case == "missing-keyfile":
        args[-1] = str(tmp_path / "key.pem")
    assert main(["serve", str(tmp_path), "--port", "0", *args]) == 2
    err = capsys.readouterr().err
    assert f"genreflow serve: error: {message.format(tmp=tmp_path)}" in err, err


def test_no_auth_serves_all_interfaces_with_a_warning(open_server, model):
    log = open_server.log_text()
    assert "reachable from other machines; the API has no authentication" in log
    assert "on http://0.0.0.0:" in log and "auth: none" in log
    assert httpx.get(f"{open_server.url}/genres").json() == {"genres": model_labels(model)}


# --------------------------------------------------------------------------- TLS


def test_tls_serves_https_only(tls_server, token, clips, model):
    url = tls_server.url
    assert url.startswith("https://")
    assert f"on {url} (docs: {url}/docs)" in tls_server.log_text()
    with httpx.Client(verify=tls_server.verify, timeout=60) as client:
        assert client.get(f"{url}/health").json()["status"] == "ok"
        # The token came from GENREFLOW_API_TOKEN.
        assert client.get(f"{url}/genres").status_code == 401
        genres = client.get(f"{url}/genres", headers=bearer(token))
        assert genres.json() == {"genres": model_labels(model)}
        response = client.post(
            f"{url}/predict",
            files={"file": ("clip.wav", clips["wav"].read_bytes(), "audio/wav")},
            headers=bearer(token),
        )
        assert response.status_code == 200, response.text
        check_prediction(response.json(), model_labels(model), top_k=3)
    # Plain HTTP to the TLS port gets no HTTP answer; nor does a client that does not trust
    # the certificate's CA.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url.replace('https://', 'http://')}/health", timeout=10)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/health", timeout=10)


# --------------------------------------------------------------------------- load shedding


def test_uploads_beyond_max_pending_get_503_at_once(open_server, clips, model):
    url = open_server.url
    assert httpx.get(f"{url}/health").json()["limits"]["max_pending"] == 2
    before = httpx.get(f"{url}/health").json()["batches"]
    data = clips["wav"].read_bytes()
    head, tail = _multipart_ends("slow.wav")
    release = threading.Event()

    def slow_upload() -> httpx.Response:
        def body():
            yield head + data[:1000]
            release.wait(60)  # stays in flight, receiving, until released
            yield data[1000:] + tail

        return httpx.post(
            f"{url}/predict",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            slow = [pool.submit(slow_upload) for _ in range(2)]
            deadline = time.monotonic() + 30
            while httpx.get(f"{url}/health").json()["pending"] < 2:
                assert time.monotonic() < deadline, "the slow uploads never arrived"
                time.sleep(0.05)
            shed = post_file(url, "clip.wav", data, "audio/wav")
            assert shed.status_code == 503, shed.text
            assert shed.headers["retry-after"] == "1"
            assert shed.json()["error"] == "overloaded"
            assert "serve.max_pending" in shed.json()["detail"]
            # Answered from the head alone: a 5 MB body announced and never sent.
            status, headers, _, _ = raw_request(url, predict_head(url, length=5_000_000))
            assert status == 503 and headers["retry-after"] == "1"
            # Other paths are not limited, and the gauge shows the two in flight.
            assert metric(scrape(url), "genreflow_uploads_pending") == 2
        finally:
            release.set()
        assert [f.result().status_code for f in slow] == [200, 200]
    health = httpx.get(f"{url}/health").json()
    # Only the two slow uploads reached the model; the refused ones never did.
    assert health["pending"] == 0 and health["batches"]["clips"] == before["clips"] + 2
    again = post_file(url, "clip.wav", data, "audio/wav")
    assert again.status_code == 200, again.text
    check_prediction(again.json(), model_labels(model), top_k=3)
    assert metric(scrape(url), "genreflow_requests_rejected_total", reason="overloaded") == 2
