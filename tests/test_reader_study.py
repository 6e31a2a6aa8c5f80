"""Reader study: blinding, sign-in, answers, resume, isolation, concurrency, crash safety, scoring."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.inter_rater import fleiss_kappa

pytest.importorskip("synthscan.render", reason="synthscan.render (display_image) is not written yet")

from synthscan.dataset import Dataset
from synthscan.evaluation.reader_study.create import StudyError, create_study, load_key
from synthscan.evaluation.reader_study.score import score_study
from synthscan.evaluation.reader_study.server import create_app
from synthscan.evaluation.reader_study.store import Answer, AnswerStore

LABEL_GRADES = [("normal", 0), ("metastasis", 0), ("amyloidosis", 2)]


def make_dataset(root: Path, source: str, per_label: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    dataset = Dataset.create(root, matrix=(64, 16))
    with dataset.writer() as writer:
        for label, grade in LABEL_GRADES:
            for i in range(per_label):
                writer.add(
                    rng.poisson(5.0 + 3 * (source == "synthetic"), (2, 64, 16)).astype(np.uint16),
                    study_id=f"{source}-{label}-{i}",
                    patient_id=f"{source}-p{label}{i}",
                    label=label,
                    perugini_grade=grade,
                    source=source,
                )
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    base = tmp_path_factory.mktemp("rs")
    real = make_dataset(base / "real", "real", 6, 1)
    synthetic = make_dataset(base / "synthetic", "synthetic", 6, 2)
    return create_study(real, synthetic, base / "study", n_cases=12, n_readers=3, seed=0, progress=False)


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def signed_in(app, token: str):
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    response = client.post("/signin", data={"token": token, "csrf_token": csrf(page)})
    assert response.status_code == 302
    return client


def current_case(client) -> tuple[str, str]:
    html = client.get("/read").get_data(as_text=True)
    match = re.search(r'name="case_id" value="([0-9a-f]+)"', html)
    return (match.group(1) if match else ""), html


def answer(client, case_id: str, html: str, call: str = "real"):
    return client.post(
        "/answer",
        data={
            "csrf_token": csrf(html),
            "case_id": case_id,
            "call": call,
            "confidence": "3",
            "diagnosis": "normal",
        },
    )


def test_create_is_balanced_and_blinded(study):
    key = load_key(study.root)
    sources = [c["source"] for c in key["cases"].values()]
    assert sources.count("real") == sources.count("synthetic") == 6
    for side in ("real", "synthetic"):
        labels = sorted(c["label"] for c in key["cases"].values() if c["source"] == side)
        assert labels == sorted(["normal", "metastasis", "amyloidosis"] * 2)
    served = json.loads((study.root / "study.json").read_text())
    text = json.dumps(served)
    assert "real" not in text.replace("real_", "") and "synthetic" not in text
    for token in (*study.reader_tokens.values(), study.admin_token):
        assert token not in text
    orders = [r["order"] for r in served["readers"]]
    assert all(sorted(o) == sorted(served["cases"]) for o in orders) and orders[0] != orders[1]
    sizes = {p.stat().st_size for p in (study.root / "images").rglob("*.png")}
    assert len(sizes) == 1
    png = next((study.root / "images").rglob("*.png")).read_bytes()
    assert b"tEXt" not in png and b"iTXt" not in png and b"zTXt" not in png


def test_create_refuses_too_few(tmp_path, study):
    real = make_dataset(tmp_path / "r", "real", 1, 3)
    with pytest.raises(StudyError, match="has 3 studies"):
        create_study(real, real, tmp_path / "s", n_cases=12, n_readers=1, progress=False)


def test_sign_in_answer_resume_and_isolation(study):
    app = create_app(study.root)
    tokens = list(study.reader_tokens.values())
    client = signed_in(app, tokens[0])
    case, html = current_case(client)
    assert "Case 1 of 12" in html
    assert answer(client, case, html).status_code == 302
    assert answer(client, case, html).status_code == 409  # answers are final
    resumed = signed_in(app, tokens[0])
    next_case, html = current_case(resumed)
    assert next_case != case and "Case 2 of 12" in html
    other = signed_in(app, tokens[1])
    assert "Case 1 of 12" in current_case(other)[1]
    stored = AnswerStore(study.root / "answers.sqlite").all_answers()
    assert [(a.reader_id, a.case_id) for a in stored] == [("reader01", case)]


def test_rejections(study):
    app = create_app(study.root)
    anonymous = app.test_client()
    page = anonymous.get("/").get_data(as_text=True)
    assert anonymous.post("/signin", data={"token": "forged", "csrf_token": csrf(page)}).status_code == 403
    assert anonymous.get("/read").status_code == 403
    case = json.loads((study.root / "study.json").read_text())["cases"][0]
    assert anonymous.get(f"/image/{case}/anterior.png").status_code == 403
    client = signed_in(app, study.reader_tokens["reader03"])
    assert client.get(f"/image/{case}/anterior.png").status_code == 200
    assert client.get("/image/ffffffffffffffff/anterior.png").status_code == 404
    assert client.get(f"/image/{case}/..%2F..%2Fprivate%2Fkey.png").status_code == 404
    assert client.get("/image/..%2Fprivate/key.json").status_code == 404
    assert client.get("/admin").status_code == 403
    _, html = current_case(client)
    assert answer(client, "ffffffffffffffff", html).status_code == 404
    no_csrf = client.post(
        "/answer", data={"case_id": case, "call": "real", "confidence": "3", "diagnosis": "normal"}
    )
    assert no_csrf.status_code == 400


def test_truth_never_in_responses(study):
    app = create_app(study.root)
    key = load_key(study.root)["cases"]
    secrets_ = {entry["study_id"] for entry in key.values()} | {"synthetic-", "real-", "metastasis-"}
    admin = signed_in(app, study.admin_token)
    pages = [admin.get("/admin").get_data(as_text=True)]
    assert "reader01" in pages[0]
    client = signed_in(app, study.reader_tokens["reader02"])
    for _ in range(3):
        case, html = current_case(client)
        pages.append(html)
        answer(client, case, html)
    for page in pages:
        for secret in secrets_:
            assert secret not in page


def test_scoring_matches_independent_computation(tmp_path, study):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(study.root, root, ignore=shutil.ignore_patterns("answers.sqlite*"))
    key = load_key(root)["cases"]
    rng = np.random.default_rng(5)
    store = AnswerStore(root / "answers.sqlite")
    calls = {}
    for reader in ("reader01", "reader02", "reader03"):
        for case in key:
            call = str(rng.choice(["real", "synthetic"]))
            calls[(reader, case)] = call
            store.add(Answer(reader, case, call, int(rng.integers(1, 6)), key[case]["label"], None))
    results = score_study(root, n_boot=200)
    truth = {c: e["source"] for c, e in key.items()}
    correct = sum(call == truth[case] for (_, case), call in calls.items())
    expected = binomtest(correct, len(calls), 0.5)
    ci = expected.proportion_ci(method="exact")
    pooled = results["pooled"]["accuracy"]
    assert pooled["k"] == correct and pooled["n"] == 36
    assert pooled["ci95"] == pytest.approx([ci.low, ci.high]) and pooled["p_vs_50"] == pytest.approx(
        expected.pvalue
    )
    table = np.array(
        [
            [
                sum(calls[(r, c)] == v for r in ("reader01", "reader02", "reader03"))
                for v in ("real", "synthetic")
            ]
            for c in sorted(key)
        ]
    )
    kappa = results["agreement"]["fleiss_kappa"]
    assert kappa["value"] == pytest.approx(fleiss_kappa(table))
    assert kappa["ci95"][0] <= kappa["value"] <= kappa["ci95"][1]
    assert results["agreement"]["cases_disagreed"] == int((table.min(axis=1) > 0).sum())
    assert results["pooled"]["diagnosis"]["all"]["agreement"]["value"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "per_label", [pytest.param(4, id="10x24"), pytest.param(67, id="10x400", marks=pytest.mark.slow)]
)
def test_load_concurrent_readers(tmp_path, per_label):
    """Threaded server on loopback, 10 concurrent readers posting every answer once plus duplicates."""
    from werkzeug.serving import make_server

    from synthscan.evaluation.reader_study.server import create_app as make_app

    base = tmp_path
    real = make_dataset(base / "real", "real", per_label, 1)
    synthetic = make_dataset(base / "synthetic", "synthetic", per_label, 2)
    n_cases = 24 if per_label == 4 else 400
    created = create_study(
        real, synthetic, base / "study", n_cases=n_cases, n_readers=10, seed=0, progress=False
    )
    server = make_server("127.0.0.1", 0, make_app(created.root), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    study_json = json.loads((created.root / "study.json").read_text())
    errors = []

    def reader(token: str, order: list[str]) -> None:
        import http.cookiejar
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        try:
            page = opener.open(url + "/", timeout=30).read().decode()
            data = urllib.parse.urlencode({"token": token, "csrf_token": csrf(page)}).encode()
            page = opener.open(url + "/signin", data, timeout=30).read().decode()
            for case in order + order[:3]:
                body = urllib.parse.urlencode(
                    {
                        "csrf_token": csrf(page),
                        "case_id": case,
                        "call": "synthetic",
                        "confidence": 2,
                        "diagnosis": "amyloidosis",
                        "grade": 2,
                    }
                ).encode()
                try:
                    page = opener.open(url + "/answer", body, timeout=30).read().decode()
                except urllib.error.HTTPError as error:
                    assert error.code == 409
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [
        threading.Thread(target=reader, args=(created.reader_tokens[r["id"]], r["order"]))
        for r in study_json["readers"]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    server.shutdown()
    assert not errors
    stored = AnswerStore(created.root / "answers.sqlite").all_answers()
    assert len(stored) == 10 * n_cases and len({(a.reader_id, a.case_id) for a in stored}) == 10 * n_cases


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root: Path, port: int):
    import subprocess
    import sys
    import time
    import urllib.request

    code = "from synthscan.cli import main; main()"
    cmd = [sys.executable, "-c", code, "reader-study", "serve", str(root), "--port", str(port)]
    # Outside the checkout: its synthscan/ folder would shadow a non-editable install on `-c`'s sys.path.
    process = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def test_kill_and_restart_loses_nothing(tmp_path, study):
    import shutil
    import signal

    root = tmp_path / "copy"
    shutil.copytree(study.root, root, ignore=shutil.ignore_patterns("answers.sqlite*"))
    port = free_port()
    process = start_server(root, port)
    try:
        import http.cookiejar
        import urllib.request

        url = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = opener.open(url + "/").read().decode()
        data = urllib.parse.urlencode({"token": study.reader_tokens["reader01"], "csrf_token": csrf(page)})
        page = opener.open(url + "/signin", data.encode()).read().decode()
        answered = []
        for _ in range(5):
            case = re.search(r'name="case_id" value="([0-9a-f]+)"', page).group(1)
            body = {
                "csrf_token": csrf(page),
                "case_id": case,
                "call": "real",
                "confidence": 4,
                "diagnosis": "normal",
            }
            page = opener.open(url + "/answer", urllib.parse.urlencode(body).encode()).read().decode()
            answered.append(case)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    process = start_server(root, port)
    try:
        page = opener.open(url + "/read").read().decode()
        assert "Case 6 of 12" in page
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    stored = AnswerStore(root / "answers.sqlite").all_answers()
    assert sorted(a.case_id for a in stored) == sorted(answered)


def test_machine_reader_separates_obviously_different_sources(tmp_path, study):
    import shutil

    from synthscan.evaluation.reader_study.auto import machine_reader

    root = tmp_path / "copy"
    shutil.copytree(study.root, root)
    result = machine_reader(root, lambda batch: batch.reshape(len(batch), 2, -1).mean(axis=2), folds=3)
    assert result["summary"]["auc"] > 0.9  # synthetic side was simulated with a higher count rate
    assert set(result["cases"]) == set(load_key(root)["cases"])
    assert score_study(root, n_boot=50)["machine_reader"]["auc"] == result["summary"]["auc"]
