"""Reader study: blinding, audit, sessions, reading order, answers, concurrency, crash safety, scoring."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binomtest
from statsmodels.stats.inter_rater import fleiss_kappa

from synthscan.cli import main
from synthscan.dataset import Dataset
from synthscan.evaluation.reader_study import store as store_module
from synthscan.evaluation.reader_study.create import (
    StudyError,
    case_path,
    condition_quotas,
    create_study,
    load_key,
    select_studies,
    split_sources,
)
from synthscan.evaluation.reader_study.score import report_markdown, score_study
from synthscan.evaluation.reader_study.server import (
    SESSION_COOKIE,
    ascii_int,
    create_app,
    make_reading_server,
)
from synthscan.evaluation.reader_study.store import Answer, AnswerStore

LABEL_GRADES = [("normal", 0), ("metastasis", 0), ("amyloidosis", 2)]


def make_dataset(
    root: Path,
    source: str,
    per_label: int,
    seed: int,
    *,
    rate: float | None = None,
    bottom: float = 0.0,
    pixel_spacing_mm: float = 2.4,
) -> Path:
    """Poisson studies; ``rate`` sets the count level (default: synthetic brighter), ``bottom`` the
    Poisson rate of the bottom 8 rows (a border tell when it differs between sources)."""
    rng = np.random.default_rng(seed)
    rate = (5.0 + 3 * (source == "synthetic")) if rate is None else rate
    dataset = Dataset.create(root, matrix=(64, 16), pixel_spacing_mm=pixel_spacing_mm)
    with dataset.writer() as writer:
        for label, grade in LABEL_GRADES:
            for i in range(per_label):
                mean = np.full((2, 64, 16), rate)
                mean[:, -8:] = bottom
                writer.add(
                    rng.poisson(mean).astype(np.uint16),
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
    return create_study(
        real, synthetic, base / "study", n_cases=12, n_readers=3, seed=0, allow_tells=True, progress=False
    )


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


def answer(client, case_id: str, html: str, call: str = "real", confidence: str = "3", **extra):
    data = {
        "csrf_token": csrf(html),
        "case_id": case_id,
        "call": call,
        "confidence": confidence,
        "diagnosis": "normal",
    }
    return client.post("/answer", data={**data, **extra})


def copy_study(study, root: Path) -> Path:
    shutil.copytree(study.root, root, ignore=shutil.ignore_patterns("answers.sqlite*"))
    return root


# ---- blinding ---------------------------------------------------------------------------------


def test_create_is_balanced_blinded_and_lossless(study):
    key = load_key(study.root)
    sources = [c["source"] for c in key["cases"].values()]
    assert sources.count("real") == sources.count("synthetic") == 6
    for side in ("real", "synthetic"):
        labels = sorted(c["label"] for c in key["cases"].values() if c["source"] == side)
        assert labels == sorted(["normal", "metastasis", "amyloidosis"] * 2)
    served = json.loads((study.root / "study.json").read_text())
    text = json.dumps(served)
    assert "real" not in text.replace("real_", "") and "synthetic" not in text and "seed" not in text
    for token in (*study.reader_tokens.values(), study.admin_token):
        assert token not in text
    orders = [r["order"] for r in served["readers"]]
    assert all(sorted(o) == sorted(served["cases"]) for o in orders) and orders[0] != orders[1]
    files = sorted((study.root / "cases").iterdir())
    assert len(files) == 12 and {p.stat().st_size for p in files} == {2 * 2 * 64 * 16}
    case_id, entry = next(iter(key["cases"].items()))
    counts = Dataset.open(entry["dataset"]).read(entry["study_id"]).counts
    served_counts = np.frombuffer(case_path(study.root, case_id).read_bytes(), "<u2").reshape(2, 64, 16)
    np.testing.assert_array_equal(served_counts, counts)  # lossless, both views in order


def test_blinding_needs_no_secret_seed(tmp_path, monkeypatch):
    """Replay every seeded generator create uses, with the public code and the seed: it predicts nothing.

    Before, ids came from a seeded permutation over a real-first list: this attack scored 200/200.
    """
    import random

    seeds = []
    real_rng, real_state = np.random.default_rng, np.random.RandomState

    def recording_rng(seed=None):
        seeds.append(("default_rng", seed))
        return real_rng(seed)

    class RecordingState(real_state):
        def __init__(self, seed=None):
            seeds.append(("RandomState", seed))
            super().__init__(seed)

    monkeypatch.setattr(np.random, "default_rng", recording_rng)
    monkeypatch.setattr(np.random, "RandomState", RecordingState)
    for module, name in [(np.random, n) for n in ("seed", "permutation", "shuffle", "choice")] + [
        (random, n) for n in ("seed", "shuffle", "sample", "choice")
    ]:
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("global seeded randomness used"))
    real = make_dataset(tmp_path / "r", "real", 34, 1, rate=5.0)
    synthetic = make_dataset(tmp_path / "s", "synthetic", 34, 2, rate=5.0)
    seeds.clear()
    runs = [
        create_study(
            real, synthetic, tmp_path / f"study{i}", n_cases=200, n_readers=2, seed=0, progress=False
        )
        for i in range(2)
    ]
    assert seeds[0] == ("default_rng", 0)  # the selection; the rest are the audit's folds and trees
    keys = [load_key(run.root)["cases"] for run in runs]
    served = [json.loads((run.root / "study.json").read_text()) for run in runs]
    # the seed chooses the same studies ...
    assert {(e["source"], e["study_id"]) for e in keys[0].values()} == {
        (e["source"], e["study_id"]) for e in keys[1].values()
    }
    # ... but which served id, rank or order position holds which truth differs between the two runs
    by_rank = [[key[c]["source"] for c in sorted(key)] for key in keys]
    assert 0.3 < np.mean([a == b for a, b in zip(*by_rank, strict=True)]) < 0.7
    by_order = [
        [key[c]["source"] for c in s["readers"][0]["order"]] for key, s in zip(keys, served, strict=True)
    ]
    assert 0.3 < np.mean([a == b for a, b in zip(*by_order, strict=True)]) < 0.7

    # the attacker replays every recorded generator: the selection's continued past its draws, and each
    # generator afresh, as a permutation of the sorted ids onto the drawn list (real first)
    patients, generated = split_sources(Dataset.open(real), Dataset.open(synthetic))
    quotas = condition_quotas(patients, generated, 100)
    chosen = select_studies((("real", patients), ("synthetic", generated)), quotas, 0)
    listed = [side for side, _ in chosen]
    continued = real_rng(0)
    for records in (patients, generated):
        for label, quota in quotas.items():
            continued.choice(sum(r.label == label for r in records), size=quota, replace=False)
    guesses = [
        continued.permutation(200),
        np.argsort(real_rng(0).permutation(800)[:200]),  # the old code's draw
        np.arange(200),
    ]
    for kind, seed in sorted(set(seeds), key=str):
        guesses.append((real_rng if kind == "default_rng" else real_state)(seed).permutation(200))
    for key, study_json in zip(keys, served, strict=True):
        ids = sorted(key)
        for positions in guesses:
            accuracy = np.mean([listed[p] == key[c]["source"] for p, c in zip(positions, ids, strict=True)])
            assert 0.3 < accuracy < 0.7  # chance, even for the best of ~1000 guesses
            order = [ids[i] for i in positions]
            assert (
                np.mean([a == b for a, b in zip(order, study_json["readers"][0]["order"], strict=True)])
                < 0.05
            )


def test_create_refuses_too_few(tmp_path, study):
    real = make_dataset(tmp_path / "r", "real", 1, 3)
    synthetic = make_dataset(tmp_path / "y", "synthetic", 1, 4)
    with pytest.raises(StudyError, match="has 3 real studies"):
        create_study(real, synthetic, tmp_path / "s", n_cases=12, n_readers=1, progress=False)


def test_create_refuses_another_pixel_size(tmp_path):
    """Bodies of 2.26 mm pixels look 6 % taller on the same matrix than 2.4 mm ones: a tell."""
    real = make_dataset(tmp_path / "r", "real", 4, 1, pixel_spacing_mm=2.26)
    synthetic = make_dataset(tmp_path / "y", "synthetic", 4, 2)
    with pytest.raises(StudyError, match=r"2\.26 mm pixels and synthetic 2\.4 mm.*--pixel-spacing-mm 2\.4"):
        create_study(real, synthetic, tmp_path / "s", n_cases=6, n_readers=1, progress=False)
    assert not (tmp_path / "s").exists()


def test_create_checks_sources(tmp_path):
    """Swapped --real/--synthetic are refused with a clear message; a mixed (augmented) dataset is split."""
    real = make_dataset(tmp_path / "r", "real", 4, 1, rate=5.0)
    synthetic = make_dataset(tmp_path / "s", "synthetic", 4, 2, rate=5.0)
    with pytest.raises(StudyError, match=r"--real .* holds no real or simulated studies.*look swapped"):
        create_study(synthetic, real, tmp_path / "x", n_cases=6, progress=False)
    with pytest.raises(StudyError, match=r"--synthetic .* holds no synthetic studies"):
        create_study(real, real, tmp_path / "x", n_cases=6, progress=False)
    assert not (tmp_path / "x").exists()
    mixed = Dataset.open(make_dataset(tmp_path / "m", "real", 4, 3, rate=5.0))
    with mixed.writer() as writer:
        for study in Dataset.open(synthetic).iter_studies():
            record = study.record
            writer.add(
                study.counts,
                study_id="g" + record.study_id,
                patient_id=record.patient_id,
                label=record.label,
                perugini_grade=record.perugini_grade,
                source=record.source,
            )
    created = create_study(
        mixed.root, mixed.root, tmp_path / "ok", n_cases=12, progress=False, allow_tells=True
    )
    key = load_key(created.root)["cases"].values()
    assert all((e["source"] == "synthetic") == e["study_id"].startswith("g") for e in key)


def test_create_with_a_corrupt_study_names_it_and_leaves_nothing(tmp_path):
    real = make_dataset(tmp_path / "r", "real", 1, 1, rate=5.0)
    synthetic = make_dataset(tmp_path / "s", "synthetic", 1, 2, rate=5.0)
    victim = next((real / "studies").iterdir())
    victim.write_bytes(b"not a zip")
    args = ["--real", str(real), "--synthetic", str(synthetic), "-n", "6", "--out", str(tmp_path / "study")]
    result = CliRunner().invoke(main, ["reader-study", "create", *args, "--allow-tells"])
    assert result.exit_code == 1 and "Traceback" not in result.output and victim.name in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "s"]  # no study, no half-built folder


def test_blinding_audit_refuses_tells_and_passes_clean_sets(tmp_path):
    real = make_dataset(tmp_path / "r", "real", 20, 1, rate=5.0)
    tell = make_dataset(tmp_path / "t", "synthetic", 20, 2, rate=5.0, bottom=2.0)  # counts in the bottom rows
    with pytest.raises(StudyError, match=r"AUC 1\.00 .*(bottom_rows|border|background).*--allow-tells"):
        create_study(real, tell, tmp_path / "refused", n_cases=60, progress=False)
    assert not (tmp_path / "refused").exists() and not list(tmp_path.glob(".refused*"))
    allowed = create_study(real, tell, tmp_path / "allowed", n_cases=60, allow_tells=True, progress=False)
    assert allowed.audit["auc"] > 0.95 and allowed.audit["tells"] and allowed.audit["allowed_tells"]
    report = report_markdown(score_study(allowed.root, n_boot=10))
    assert "## Blinding audit" in report and "created with --allow-tells" in report
    assert (
        "readers could beat chance on low-level tells alone" in report and "separates with AUC 1.00" in report
    )
    clean = make_dataset(tmp_path / "c", "synthetic", 20, 3, rate=5.0)
    passed = create_study(real, clean, tmp_path / "passed", n_cases=60, progress=False)
    assert passed.audit["auc"] < 0.65 and passed.audit["ci95"][0] < 0.5 < passed.audit["ci95"][1]
    assert passed.audit["enforced"] and not passed.audit["tells"]


# ---- sign-in, sessions, order --------------------------------------------------------------------


def test_sign_in_answer_resume_and_isolation(study, tmp_path):
    app = create_app(copy_study(study, tmp_path / "s"))
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
    stored = AnswerStore(tmp_path / "s" / "answers.sqlite").all_answers()
    assert [(a.reader_id, a.case_id) for a in stored] == [("reader01", case)]


def test_rejections(study, tmp_path):
    app = create_app(copy_study(study, tmp_path / "s"))
    anonymous = app.test_client()
    page = anonymous.get("/").get_data(as_text=True)
    assert anonymous.post("/signin", data={"token": "forged", "csrf_token": csrf(page)}).status_code == 403
    assert anonymous.post("/signin", data={"token": study.admin_token, "csrf_token": "x"}).status_code == 400
    assert anonymous.get("/read").status_code == 403
    client = signed_in(app, study.reader_tokens["reader03"])
    case, html = current_case(client)
    assert anonymous.get(f"/counts/{case}").status_code == 403
    assert client.get(f"/counts/{case}").status_code == 200
    assert client.get("/counts/ffffffffffffffff").status_code == 404
    assert client.get(f"/counts/{case}%2F..%2F..%2Fprivate%2Fkey.json").status_code == 404
    assert client.get("/counts/..%2Fprivate%2Fkey.json").status_code == 404
    assert client.get("/admin").status_code == 403
    assert answer(client, "ffffffffffffffff", html).status_code == 404
    no_csrf = client.post(
        "/answer", data={"case_id": case, "call": "real", "confidence": "3", "diagnosis": "normal"}
    )
    assert no_csrf.status_code == 400


def test_reading_order_is_enforced(study, tmp_path):
    """A reader goes back to their own answered cases, never ahead: page, counts and answer all refuse."""
    root = copy_study(study, tmp_path / "s")
    app = create_app(root)
    order = json.loads((root / "study.json").read_text())["readers"][0]["order"]
    client = signed_in(app, study.reader_tokens["reader01"])
    case, html = current_case(client)
    assert case == order[0]
    assert client.get(f"/counts/{order[1]}").status_code == 403
    assert answer(client, order[1], html).status_code == 403
    assert client.get("/read/1").status_code == 302 and client.get("/read/2").status_code == 403
    assert answer(client, order[0], html, flag="1").status_code == 302
    assert client.get(f"/counts/{order[0]}").status_code == 200  # own previous case stays readable
    back = client.get("/read/1").get_data(as_text=True)
    assert "Your answer (final)" in back and "Remove review flag" in back and 'id="answer"' not in back
    assert (
        client.post("/flag", data={"csrf_token": csrf(back), "case_id": order[0], "flag": "0"}).status_code
        == 302
    )
    assert (
        client.post("/flag", data={"csrf_token": csrf(back), "case_id": order[1], "flag": "1"}).status_code
        == 404
    )
    assert not AnswerStore(root / "answers.sqlite").answers_of("reader01")[order[0]].flagged
    assert client.get("/read/3").status_code == 403 and client.get("/read/13").status_code == 404


def test_sessions_are_server_side_expire_and_are_revoked(study, tmp_path, monkeypatch):
    root = copy_study(study, tmp_path / "s")
    app = create_app(root, session_idle_hours=1)
    client = signed_in(app, study.reader_tokens["reader01"])
    stolen = client.get_cookie(SESSION_COOKIE).value
    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE, stolen)
    assert thief.get("/read").status_code == 200
    restarted = create_app(root).test_client()
    restarted.set_cookie(SESSION_COOKIE, stolen)
    assert restarted.get("/read").status_code == 200  # a restart keeps live sessions ...
    _, html = current_case(client)
    assert client.post("/signout", data={"csrf_token": csrf(html)}).status_code == 302
    assert thief.get("/read").status_code == 403  # ... but sign-out ends the copy too
    assert create_app(root).test_client().get("/read").status_code == 403

    # idle expiry: an hour and a second later the session is gone
    client = signed_in(app, study.reader_tokens["reader02"])
    assert client.get("/read").status_code == 200
    now = store_module.time.time()
    monkeypatch.setattr(store_module.time, "time", lambda: now + 3601)
    assert client.get("/read").status_code == 403
    monkeypatch.undo()

    # token rotation by the admin ends the reader's sessions; the old token stops working
    reader = signed_in(app, study.reader_tokens["reader03"])
    admin = signed_in(app, study.admin_token)
    page = admin.get("/admin").get_data(as_text=True)
    rotated = admin.post("/admin/rotate", data={"csrf_token": csrf(page), "reader": "reader03"})
    new_token = re.search(r"<code>([^<]+)</code>", rotated.get_data(as_text=True)).group(1)
    assert reader.get("/read").status_code == 403
    fresh = app.test_client()
    page = fresh.get("/").get_data(as_text=True)
    old = fresh.post("/signin", data={"token": study.reader_tokens["reader03"], "csrf_token": csrf(page)})
    assert old.status_code == 403
    assert signed_in(create_app(root), new_token).get("/read").status_code == 200  # survives a restart


def test_cookies_are_strict_and_secure_over_tls(study, tmp_path):
    root = copy_study(study, tmp_path / "s")

    def session_cookie(app, **kwargs) -> str:
        client = app.test_client()
        page = client.get("/", **kwargs).get_data(as_text=True)
        response = client.post(
            "/signin", data={"token": study.admin_token, "csrf_token": csrf(page)}, **kwargs
        )
        return next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(SESSION_COOKIE))

    plain = session_cookie(create_app(root))
    assert "HttpOnly" in plain and "SameSite=Strict" in plain and "Secure" not in plain
    tls = session_cookie(create_app(root), base_url="https://reading.example")
    assert "Secure" in tls and "HttpOnly" in tls and "SameSite=Strict" in tls
    proxied = session_cookie(create_app(root, trust_proxy=True), headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in proxied
    spoofed = session_cookie(create_app(root), headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in spoofed  # without --proxy the header is not trusted


def test_tls_server(study, tmp_path):
    """``--cert/--key``: a real TLS handshake, and the cookie comes back Secure."""
    import ssl

    from werkzeug.serving import make_ssl_devcert

    cert, key = make_ssl_devcert(str(tmp_path / "dev"), host="localhost")
    server = make_reading_server(copy_study(study, tmp_path / "s"), "127.0.0.1", 0, cert=cert, key=key)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # a self-signed development certificate
        connection = http.client.HTTPSConnection("127.0.0.1", server.server_port, context=context, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200 and "Secure" in response.getheader("Set-Cookie")
        assert response.getheader("Strict-Transport-Security")
    finally:
        server.shutdown()
        server.server_close()


def test_serve_refuses_clear_text_off_loopback(study):
    with pytest.raises(StudyError, match=r"in clear.*--cert/--key.*--proxy"):
        make_reading_server(study.root, "0.0.0.0", 0)
    with pytest.raises(StudyError, match="--cert and --key go together"):
        make_reading_server(study.root, "127.0.0.1", 0, cert="c.pem")
    result = CliRunner().invoke(main, ["reader-study", "serve", str(study.root), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "Reading page on" not in result.output and "in clear" in result.output


# ---- input limits ------------------------------------------------------------------------------


def test_strict_ascii_integers(study, tmp_path):
    assert ascii_int("3", range(1, 6)) == 3
    for bad in ("٣", "３", " 3", "3 ", "+3", "03x", "", "²", None, "9"):
        assert ascii_int(bad, range(1, 6)) is None, bad
    app = create_app(copy_study(study, tmp_path / "s"))
    client = signed_in(app, study.reader_tokens["reader01"])
    case, html = current_case(client)
    assert answer(client, case, html, confidence="٣").status_code == 400
    assert answer(client, case, html, flag="١").status_code == 400
    assert AnswerStore(tmp_path / "s" / "answers.sqlite").all_answers() == []
    assert answer(client, case, html, confidence="3").status_code == 302


def test_oversized_bodies_are_refused_whatever_the_transfer_encoding(study, tmp_path):
    root = copy_study(study, tmp_path / "s")
    app = create_app(root)
    client = signed_in(app, study.reader_tokens["reader01"])
    case, html = current_case(client)
    cookie = client.get_cookie(SESSION_COOKIE).value
    server = make_reading_server(root, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def post(body: bytes, chunked: bool) -> int | None:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"{SESSION_COOKIE}={cookie}",
        }
        parts = (body[i : i + 4096] for i in range(0, len(body), 4096))
        try:
            if chunked:
                connection.request(
                    "POST", "/answer", parts, {**headers, "Transfer-Encoding": "chunked"}, encode_chunked=True
                )
            else:
                connection.request("POST", "/answer", body, headers)
            return connection.getresponse().status
        except (ConnectionError, http.client.HTTPException):
            return None  # the server may close before reading an oversized body: also a refusal
        finally:
            connection.close()

    fields = {
        "csrf_token": csrf(html),
        "case_id": case,
        "call": "real",
        "confidence": "3",
        "diagnosis": "normal",
    }
    padded = urllib.parse.urlencode({**fields, "padding": "x" * 1_000_000}).encode()
    try:
        assert post(padded, chunked=True) in (413, None)
        assert post(padded, chunked=False) in (413, None)
        assert AnswerStore(root / "answers.sqlite").all_answers() == []
        assert post(urllib.parse.urlencode(fields).encode(), chunked=True) == 302  # small chunked bodies work
    finally:
        server.shutdown()
        server.server_close()
    assert [a.case_id for a in AnswerStore(root / "answers.sqlite").all_answers()] == [case]


def test_truth_never_in_responses(study, tmp_path):
    app = create_app(copy_study(study, tmp_path / "s"))
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
    pages.append(client.get("/read/1").get_data(as_text=True))
    for page in pages:
        for secret in secrets_:
            assert secret not in page


# ---- scoring -----------------------------------------------------------------------------------


def test_scoring_matches_independent_computation(tmp_path, study):
    root = copy_study(study, tmp_path / "copy")
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


def test_report_counts_readers_who_read_with_time_and_flags(tmp_path, study):
    root = copy_study(study, tmp_path / "copy")
    app = create_app(root)
    client = signed_in(app, study.reader_tokens["reader02"])
    for flag in ("1", "0", "0"):
        case, html = current_case(client)
        assert answer(client, case, html, flag=flag).status_code == 302
    results = score_study(root, n_boot=10)
    assert results["readers_with_answers"] == ["reader02"]
    assert results["readers_without_answers"] == ["reader01", "reader03"]
    reader = results["per_reader"]["reader02"]
    assert reader["flagged"] == 1 and reader["seconds_per_case"]["n"] == 3
    assert 0 <= reader["seconds_per_case"]["median"] < 60
    assert [f["reader"] for f in results["flagged"]] == ["reader02"]
    report = report_markdown(results)
    assert report.count("1 of 3 readers read") == 1 and "each assessed" not in report
    assert "Readers without answers (not counted):** reader01, reader03" in report
    assert "median of" in report and "1 reads were flagged" in report


def test_cli_create_prints_audit_and_score_prints_it_beside_accuracy(tmp_path):
    real = make_dataset(tmp_path / "r", "real", 4, 1, rate=5.0)
    tell = make_dataset(tmp_path / "t", "synthetic", 4, 2, rate=5.0, bottom=3.0)
    runner = CliRunner()
    base = ["reader-study", "create", "--real", str(real), "--synthetic", str(tell), "-n", "24"]
    refused = runner.invoke(main, [*base, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    errors = [line for line in refused.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--allow-tells" in errors[0] and not (tmp_path / "a").exists()
    swapped = runner.invoke(main, [*base[:2], "--real", str(tell), "--synthetic", str(real), "--out", "x"])
    assert swapped.exit_code != 0 and "look swapped" in swapped.output
    created = runner.invoke(main, [*base, "--out", str(tmp_path / "b"), "--allow-tells"])
    assert created.exit_code == 0, created.output
    assert "Blinding audit: case files tell real from synthetic with AUC" in created.output
    assert "tells: above 0.65 and above chance; created with --allow-tells" in created.output
    small = runner.invoke(main, [*base[:-1], "6", "--out", str(tmp_path / "c")])  # 3 per side: not enforced
    assert small.exit_code == 0 and "too few cases to enforce" in small.output
    scored = runner.invoke(
        main, ["reader-study", "score", str(tmp_path / "b"), "--out", str(tmp_path / "rep")]
    )
    assert scored.exit_code == 0, scored.output
    assert "Readers' pooled accuracy n/a (no answers); blinding audit AUC" in scored.output


# ---- concurrency and crash safety --------------------------------------------------------------


def http_reader(
    url: str, reader: str, token: str, acknowledged: list, errors: list, stop: threading.Event | None = None
):
    """A reader over real HTTP: sign in, then answer whatever case the page shows until done.

    Records each answer the server acknowledged (302). Survives the server dying: retries until ``stop``.
    """
    import http.cookiejar
    import time
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    opener.addheaders = []
    signed = False
    while not (stop and stop.is_set()):
        try:
            if not signed:
                page = opener.open(url + "/", timeout=30).read().decode()
                data = urllib.parse.urlencode({"token": token, "csrf_token": csrf(page)}).encode()
                opener.open(url + "/signin", data, timeout=30).read()
                signed = True
            page = opener.open(url + "/read", timeout=30).read().decode()
            match = re.search(r'name="case_id" value="([0-9a-f]+)"', page)
            if match is None:
                return
            case = match.group(1)
            body = {
                "csrf_token": csrf(page),
                "case_id": case,
                "call": "synthetic",
                "confidence": 2,
                "diagnosis": "amyloidosis",
                "grade": 2,
            }
            try:
                opener.open(url + "/answer", urllib.parse.urlencode(body).encode(), timeout=30).read()
                acknowledged.append((reader, case))
                opener.open(url + "/answer", urllib.parse.urlencode(body).encode(), timeout=30)  # a duplicate
            except urllib.error.HTTPError as error:
                if error.code != 409:
                    raise
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException, TimeoutError) as error:
            if stop is None:
                errors.append(error)
                return
            time.sleep(0.05)  # the server is down: retry until it is back
        except Exception as error:  # collected and asserted by the test
            errors.append(error)
            return


@pytest.mark.parametrize(
    "per_label", [pytest.param(4, id="10x24"), pytest.param(67, id="10x400", marks=pytest.mark.slow)]
)
def test_load_concurrent_readers(tmp_path, per_label):
    """Threaded server on loopback, 10 concurrent readers each answering every case once, plus duplicates."""
    real = make_dataset(tmp_path / "real", "real", per_label, 1)
    synthetic = make_dataset(tmp_path / "synthetic", "synthetic", per_label, 2)
    n_cases = 24 if per_label == 4 else 400
    created = create_study(
        real, synthetic, tmp_path / "study", n_cases=n_cases, n_readers=10, allow_tells=True, progress=False
    )
    server = make_reading_server(created.root, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    acknowledged, errors = [], []
    threads = [
        threading.Thread(target=http_reader, args=(url, reader, token, acknowledged, errors))
        for reader, token in created.reader_tokens.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    server.shutdown()
    server.server_close()
    assert not errors
    stored = AnswerStore(created.root / "answers.sqlite").all_answers()
    assert len(acknowledged) == len(stored) == 10 * n_cases
    assert len({(a.reader_id, a.case_id) for a in stored}) == 10 * n_cases


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
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


@pytest.mark.parametrize(
    ("per_label", "readers"),
    [pytest.param(2, 3, id="3x6"), pytest.param(67, 10, id="10x400", marks=pytest.mark.slow)],
)
def test_kill_9_mid_run_loses_no_acknowledged_answer(tmp_path, per_label, readers):
    """Readers answer over HTTP while the server is killed with SIGKILL and restarted; sessions survive
    the restart, every acknowledged answer is stored, none twice, and every reader finishes."""
    import signal
    import time

    real = make_dataset(tmp_path / "real", "real", per_label, 1)
    synthetic = make_dataset(tmp_path / "synthetic", "synthetic", per_label, 2)
    n_cases = 6 * per_label
    created = create_study(
        real,
        synthetic,
        tmp_path / "study",
        n_cases=n_cases,
        n_readers=readers,
        allow_tells=True,
        progress=False,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(created.root, port)
    acknowledged, errors, stop = [], [], threading.Event()
    threads = [
        threading.Thread(target=http_reader, args=(url, reader, token, acknowledged, errors, stop))
        for reader, token in created.reader_tokens.items()
    ]
    for t in threads:
        t.start()
    total = readers * n_cases
    try:
        while len(acknowledged) < total // 3 and all(t.is_alive() for t in threads):
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = len(acknowledged)
        process = start_server(created.root, port)
        for t in threads:
            t.join(1200)
    finally:
        stop.set()
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not errors and 0 < killed_at < total
    stored = AnswerStore(created.root / "answers.sqlite").all_answers()
    pairs = [(a.reader_id, a.case_id) for a in stored]
    assert len(pairs) == len(set(pairs)) == total  # every reader finished, no duplicates
    assert set(acknowledged) <= set(pairs) and len(acknowledged) == len(set(acknowledged)) <= total


def test_machine_reader_separates_obviously_different_sources(tmp_path, study):
    from synthscan.evaluation.reader_study.auto import machine_reader

    root = tmp_path / "copy"
    shutil.copytree(study.root, root)
    result = machine_reader(root, lambda batch: batch.reshape(len(batch), 2, -1).mean(axis=2), folds=3)
    assert result["summary"]["auc"] > 0.9  # synthetic side was simulated with a higher count rate
    assert set(result["cases"]) == set(load_key(root)["cases"])
    assert score_study(root, n_boot=50)["machine_reader"]["auc"] == result["summary"]["auc"]
