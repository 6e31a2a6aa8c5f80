"""``synthscan reader-study``: create, serve, score and machine-read a blinded reader study."""

from __future__ import annotations

import click

from synthscan.cli.options import RANDOM_STATE
from synthscan.evaluation.reader_study.audit import DEFAULT_MAX_AUC, verdict
from synthscan.evaluation.reader_study.create import StudyError


@click.command()
@click.option(
    "--real",
    "real",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset of real scans.",
)
@click.option(
    "--synthetic",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset of synthetic scans.",
)
@click.option(
    "-n",
    "n_cases",
    default=400,
    show_default=True,
    type=click.IntRange(min=2),
    help="Cases in total (even; half real, half synthetic).",
)
@click.option(
    "--readers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of readers; each gets a token and own order.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New folder for the study.")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of which studies enter the case set only; ids, truth assignment and orders are OS-random.",
)
@click.option(
    "--max-audit-auc",
    default=DEFAULT_MAX_AUC,
    show_default=True,
    type=click.FloatRange(0.5, 1.0),
    help="Refuse the case set when the blinding audit tells real from synthetic better than this AUC "
    "(and above chance, with at least 10 cases per side).",
)
@click.option(
    "--allow-tells",
    is_flag=True,
    help="Create the study even when the blinding audit exceeds --max-audit-auc (reported by score).",
)
def create(
    real: str,
    synthetic: str,
    n_cases: int,
    readers: int,
    out: str,
    seed: int,
    max_audit_auc: float,
    allow_tells: bool,
) -> None:
    """Build a balanced, blinded, audited case set and print each reader's access token once."""
    from synthscan.evaluation.reader_study.create import create_study

    try:
        created = create_study(
            real,
            synthetic,
            out,
            n_cases=n_cases,
            n_readers=readers,
            seed=seed,
            max_audit_auc=max_audit_auc,
            allow_tells=allow_tells,
        )
    except StudyError as error:
        raise click.ClickException(str(error)) from error
    audit = created.audit
    click.echo(f"Created {created.n_cases} cases in {created.root}.")
    click.echo(
        f"Blinding audit: case files tell real from synthetic with AUC {audit['auc']:.2f} "
        f"(95% CI {audit['ci95'][0]:.2f}–{audit['ci95'][1]:.2f}): {verdict(audit)}."
    )
    click.echo("Tokens are shown only now and stored only as hashes; hand each reader their own:")
    for reader, token in created.reader_tokens.items():
        click.echo(f"  {reader}: {token}")
    click.echo(f"  admin: {created.admin_token}")


@click.command()
@click.argument("study", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (keep loopback unless on a trusted network).",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free one).",
)
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False),
    help="TLS certificate (PEM) to serve over HTTPS; with --key.",
)
@click.option(
    "--key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM); with --cert."
)
@click.option(
    "--proxy",
    is_flag=True,
    help="Behind one TLS reverse proxy that sets X-Forwarded-For/-Proto/-Host (cookies become Secure).",
)
@click.option(
    "--session-idle-hours",
    default=12.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Sign a reader out after this long without a request.",
)
def serve(
    study: str,
    host: str,
    port: int,
    cert: str | None,
    key: str | None,
    proxy: bool,
    session_idle_hours: float,
) -> None:
    """Serve the reading page of the case set STUDY (a `reader-study create` folder); answers are saved
    as they are given, so stopping it loses nothing."""
    from synthscan.evaluation.reader_study.server import make_reading_server

    try:
        server = make_reading_server(
            study,
            host,
            port,
            cert=cert,
            key=key,
            trust_proxy=proxy,
            session_idle_hours=session_idle_hours,
        )
    except StudyError as error:
        raise click.ClickException(str(error)) from error
    scheme = "https" if cert else "http"
    click.echo(f"Reading page on {scheme}://{host}:{server.server_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    finally:
        server.server_close()


@click.command()
@click.argument("study", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for report.md, results.json, plots.",
)
@click.option(
    "--bootstrap",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Bootstrap resamples for the κ CI.",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Bootstrap seed.")
def score(study: str, out: str, bootstrap: int, seed: int) -> None:
    """Score the readers of the case set STUDY: accuracy, sensitivity, specificity, Fleiss' κ,
    confidence, diagnosis."""
    from synthscan.evaluation.reader_study.score import write_report

    try:
        results = write_report(study, out, n_boot=bootstrap, seed=seed)
    except StudyError as error:
        raise click.ClickException(str(error)) from error
    accuracy = results["pooled"]["accuracy"]
    line = "Readers' pooled accuracy " + (
        "n/a (no answers)"
        if accuracy["value"] is None
        else f"{accuracy['value']:.3f} (95% CI {accuracy['ci95'][0]:.3f}–{accuracy['ci95'][1]:.3f})"
    )
    audit = results.get("blinding_audit")
    if audit:
        line += (
            f"; blinding audit AUC {audit['auc']:.3f} (95% CI {audit['ci95'][0]:.3f}–{audit['ci95'][1]:.3f})"
        )
    click.echo(f"{line}; report in {out}/report.md")


@click.command()
@click.argument("study", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--model",
    "run",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Trained classifier run folder.",
)
@click.option(
    "--folds", default=5, show_default=True, type=click.IntRange(min=2), help="Cross-validation folds."
)
@click.option("--seed", default=0, show_default=True, type=RANDOM_STATE, help="Fold shuffling seed.")
@click.option(
    "--batch-size",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    help="Cases per feature-extraction batch.",
)
def auto(study: str, run: str, folds: int, seed: int, batch_size: int) -> None:
    """Machine reader of the case set STUDY: cross-validated logistic regression on classifier features,
    real vs synthetic."""
    from synthscan.classifier.features import FeatureExtractor
    from synthscan.evaluation.reader_study.auto import machine_reader

    result = machine_reader(study, FeatureExtractor(run), folds=folds, seed=seed, batch_size=batch_size)
    summary = result["summary"]
    click.echo(
        f"Machine reader accuracy {summary['accuracy']['value']:.3f}, AUC {summary['auc']:.3f}; "
        "`reader-study score` reports it beside the readers."
    )
