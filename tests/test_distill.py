"""Latent consistency distillation: a few-step student of a tiny generator, with guidance built in."""

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import (
    GENERATOR_MATRIX,
    draw_half_the_bodies_down,
    interrupt_after_the_first_checkpoint,
    write_generator_dataset,
)
from diffusers import DDPMScheduler, LCMScheduler

from synthscan.cli import main
from synthscan.config import ConfigError, builtin_config, load_config
from synthscan.dataset import Dataset, DatasetError
from synthscan.generator import storage
from synthscan.generator.conditions import split_key
from synthscan.generator.config import DistillConfig
from synthscan.generator.distill import (
    ConsistencyObjective,
    GuidanceObjective,
    condition_weights,
    consistency_scheduler,
    distill,
    guided_output,
    student_pipeline,
    teacher_guided_timesteps,
)
from synthscan.generator.models import ConditionedUNet
from synthscan.generator.sampling import (
    SampleRequest,
    generate_studies,
    sample_to_dataset,
    sampler_settings,
)
from synthscan.generator.storage import describe_model, load_pipeline, model_dir, save_model, shipped_models
from synthscan.generator.train import finetune
from synthscan.labels import LABELS


def tiny(**overrides) -> DistillConfig:
    return load_config(DistillConfig, builtin_config("distill", "tiny"), overrides)


@pytest.fixture(scope="module")
def student(tiny_generator, tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    data = write_generator_dataset(root / "data")
    return distill(tiny_generator, data.root, tiny(), root / "run", progress=False)


def test_the_student_samples_in_few_steps_of_one_unet_row_per_study(student, tiny_generator):
    teacher, pipeline = load_pipeline(tiny_generator), load_pipeline(student)
    assert isinstance(pipeline.scheduler, LCMScheduler) and pipeline.config.default_steps == 2
    assert pipeline.config.guidance_distilled and not teacher.config.get("guidance_distilled")
    rows = {}
    for name, model in (("teacher", teacher), ("student", pipeline)):
        seen = []
        model.unet.register_forward_hook(lambda module, args, output, seen=seen: seen.append(len(args[0])))
        generate_studies(model, [SampleRequest(f"s{i}", "metastasis", None, i) for i in range(3)])
        rows[name] = sum(seen)
    chunk = teacher.config.eval_chunk  # each call runs a full chunk
    assert rows["teacher"] == teacher.config.default_steps * 2 * chunk, "teacher: conditional + null rows"
    assert rows["student"] == pipeline.config.default_steps * chunk, "student: one row per study and step"
    assert pipeline.config.conditions == teacher.config.conditions
    assert pipeline.config.acquisition_window == teacher.config.acquisition_window
    assert (student.parent / "samples" / "final.png").is_file()
    assert "Distilled" in (student / "README.md").read_text()


def test_a_student_claims_no_guidance_interval(tiny_generator):
    """The student's one row per step has its teacher's interval in its weights; it must not claim one."""
    teacher = load_pipeline(tiny_generator)
    teacher.register_to_config(guidance_interval=[0.2, 0.8], label_guidance_interval={"normal": [0.4, 0.8]})
    network = ConditionedUNet(teacher.unet, teacher.condition_encoder)
    pipeline = student_pipeline(teacher, network, tiny(), ["simulated"])
    assert pipeline.config.guidance_interval == [0.0, 1.0] and pipeline.config.label_guidance_interval == {}
    settings = sampler_settings(pipeline, None, None)
    assert "guidance_interval" not in settings and "label_guidance_interval" not in settings


def test_guidance_students_learn_the_conditional_output_where_the_teacher_does_not_guide(tiny_generator):
    """The target follows the teacher's interval: guided where its nearest solver step is guided."""
    teacher = load_pipeline(tiny_generator)
    steps = teacher.config.default_steps
    solver = type(teacher.scheduler).from_config(teacher.scheduler.config)
    solver.set_timesteps(steps)
    grid = solver.timesteps.long()
    assert teacher_guided_timesteps(teacher).all(), "guided at every step: everywhere"
    teacher.register_to_config(guidance_interval=[0.2, 0.8])
    guided = teacher_guided_timesteps(teacher)
    assert guided.shape == (teacher.scheduler.config.num_train_timesteps, len(teacher.config.conditions))
    for i, t in enumerate(grid.tolist()):
        assert guided[t].tolist() == [int(0.2 * steps) <= i < int(0.8 * steps)] * guided.shape[1]
    for high, low in zip(grid[:-1].tolist(), grid[1:].tolist(), strict=True):  # between solver steps
        for t in range(low + 1, high):  # the nearer one decides (a tie: the noisier)
            assert torch.equal(guided[t], guided[low] if t - low < high - t else guided[high])
    assert 0 < guided[:, 0].sum() < len(guided), "guided and unguided timesteps"
    # a label with its own interval: its condition ids follow it, the others the model's
    own = split_key(teacher.config.conditions[1])[0]
    teacher.register_to_config(label_guidance_interval={own: [0.5, 1.0]})
    guided = teacher_guided_timesteps(teacher)
    for i, t in enumerate(grid.tolist()):
        for k, key in enumerate(teacher.config.conditions):
            start, stop = (0.5, 1.0) if split_key(key)[0] == own else (0.2, 0.8)
            assert bool(guided[t, k]) == (int(start * steps) <= i < int(stop * steps))

    net, labels, nulls = RowCounter(), torch.tensor([0, 1]), torch.full((2,), 4)
    guidance = torch.tensor([3.5, 2.0, 1.0, 2.0])
    x, t = torch.randn(2, *teacher.latent_shape, generator=torch.Generator().manual_seed(0)), grid[:2]
    mixed = guided_output(net, x, t, labels, nulls, guidance, torch.tensor([True, False]))
    torch.testing.assert_close(mixed[:1], guided_output(net, x, t, labels, nulls, guidance)[:1])
    torch.testing.assert_close(mixed[1:], guided_output(net, x, t, labels, nulls, None)[1:])

    noise_scheduler = DDPMScheduler.from_config(teacher.scheduler.config)
    objective = GuidanceObjective(net, noise_scheduler, guidance, guided)

    class Conditional(torch.nn.Module):  # a student that has learned the conditional output only
        def forward(self, x, t, class_labels):
            return SimpleNamespace(sample=guided_output(net, x, t, class_labels, nulls, None))

    z0 = torch.randn(64, *teacher.latent_shape, generator=torch.Generator().manual_seed(1))
    other = next(k for k, key in enumerate(teacher.config.conditions) if split_key(key)[0] != own)
    labels, nulls = torch.tensor([1, other] * 32), torch.full((64,), 4)  # own interval, the model's
    generator = torch.Generator().manual_seed(2)
    noise = torch.randn(z0.shape, generator=generator)
    draw = torch.Generator().manual_seed(2)  # the objective's timesteps, drawn after the noise
    torch.randn(z0.shape, generator=draw)
    t_drawn = torch.randint(0, noise_scheduler.config.num_train_timesteps, (64,), generator=draw)
    loss = objective(Conditional(), z0, noise, labels, nulls, generator)
    x = noise_scheduler.add_noise(z0, noise, t_drawn)
    target = guided_output(net, x, t_drawn, labels, nulls, guidance)
    conditional = guided_output(net, x, t_drawn, labels, nulls, None)
    keep = guided[t_drawn, labels].view(-1, 1, 1, 1)
    expected = torch.nn.functional.mse_loss(conditional, torch.where(keep, target, conditional))
    torch.testing.assert_close(loss, expected)
    assert 0 < guided[t_drawn, labels].sum() < 64, "both kinds of rows drawn"


def test_student_samples_depend_on_seed_not_on_batch(student, tmp_path):
    """LCM sampling adds fresh noise between steps: each study draws it from its own seed, also when
    its body was misplaced and drawn again."""
    pipeline = load_pipeline(student)
    draw_half_the_bodies_down(pipeline)
    a = sample_to_dataset(pipeline, tmp_path / "a", condition="normal", n=5, batch_size=5, progress=False)
    b = sample_to_dataset(pipeline, tmp_path / "b", condition="normal", n=5, batch_size=2, progress=False)
    assert any(int(r.extra["redraws"]) for r in a), "the redraws ran"
    for ra, rb in zip(a, b, strict=True):
        assert ra.extra["redraws"] == rb.extra["redraws"]
        assert np.array_equal(a.read(ra).counts, b.read(rb).counts)
    assert not np.array_equal(a.read(a.records[0]).counts, a.read(a.records[1]).counts)
    assert a.info.provenance["generator"]["sampler"] == "LCMScheduler"


def test_a_distilled_model_refuses_another_guidance_and_a_second_distillation(
    student, tiny_generator, tmp_path
):
    pipeline, teacher = load_pipeline(student), load_pipeline(tiny_generator)
    assert [pipeline.guidance_for(label) for label in LABELS] == [
        teacher.guidance_for(label) for label in LABELS
    ]
    with pytest.raises(ValueError, match="built into its weights"):
        pipeline.guidance_for("normal", 3.0)
    args = ["sample", "--model", str(student), "--condition", "normal", "-n", "1", "--guidance", "3"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "s"), "--no-progress"])
    assert result.exit_code == 1 and "leave out --guidance" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="already a consistency model"):
        distill(student, tmp_path, tiny(), tmp_path / "again", progress=False)
    with pytest.raises(ValueError, match="ddim_timesteps"):
        consistency_scheduler(teacher, 5000)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_the_objective_follows_the_guided_teacher_to_the_sampler_s_consistency_function(
    tiny_generator, prediction_type
):
    """Exact teacher → the DDIM step lands on the noised data point; f is LCMScheduler's denoised output."""
    teacher = load_pipeline(tiny_generator)
    teacher.scheduler.register_to_config(prediction_type=prediction_type)
    scheduler = consistency_scheduler(teacher, 10)
    g = torch.Generator().manual_seed(0)
    z0, noise = (torch.randn(4, *teacher.latent_shape, generator=g) for _ in range(2))
    start, end = torch.tensor([999, 599, 199, 99]), torch.tensor([899, 499, 99, 0])

    class ExactTeacher(torch.nn.Module):
        """Knows z0: returns the exact noise or velocity of any x on z0's noising path."""

        def forward(self, x, t, class_labels):
            a, s = (
                v[t].view(-1, 1, 1, 1)
                for v in (scheduler.alphas_cumprod.sqrt(), (1 - scheduler.alphas_cumprod).sqrt())
            )
            eps = (x - a * torch.cat([z0, z0])) / s
            out = eps if prediction_type == "epsilon" else a * eps - s * torch.cat([z0, z0])
            return SimpleNamespace(sample=out)

    guidance = torch.tensor([3.5, 2.0, 2.0, 2.0, 2.0])
    objective = ConsistencyObjective(ExactTeacher(), None, None, scheduler, guidance, 1e-3)
    x = scheduler.add_noise(z0, noise, start)
    x0, eps = objective._x0_and_noise(
        ExactTeacher()(torch.cat([x, x]), torch.cat([start, start]), None).sample[:4], x, start
    )
    torch.testing.assert_close(x0, z0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(eps, noise, atol=1e-4, rtol=1e-4)
    labels = torch.tensor([0, 1, 2, 3])
    landed = objective.teacher_step(x, start, end, labels, torch.full_like(labels, 5))
    torch.testing.assert_close(landed, scheduler.add_noise(z0, noise, end), atol=1e-4, rtol=1e-4)

    net = ConditionedUNet(teacher.unet, teacher.condition_encoder).eval()
    ids = torch.tensor([[0, 0, 0]] * 4)
    scheduler.set_timesteps(2)
    t = scheduler.timesteps[0]
    with torch.no_grad():
        f = objective.consistency(net, x, t.expand(4), ids)
        denoised = scheduler.step(net(x, t.expand(4), class_labels=ids).sample, t, x).denoised
        at_zero = objective.consistency(net, x, torch.zeros(4, dtype=torch.long), ids)
    torch.testing.assert_close(f, denoised, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(at_zero, x, atol=2e-3, rtol=0)  # the boundary condition f(x, 0) = x
    assert objective.grid.tolist() == [99, 199, 299, 399, 499, 599, 699, 799, 899, 999]


class RowCounter(torch.nn.Module):
    """A stand-in network: x times a per-label factor plus t / 1000; records each call's inputs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    @property
    def rows(self):
        return [len(x) for x, _ in self.calls]

    def forward(self, x, t, class_labels):
        self.calls.append((x, t))
        factor = (1.0 + class_labels.float()).view(-1, 1, 1, 1)
        return SimpleNamespace(sample=x * factor + t.view(-1, 1, 1, 1) / 1000)


def test_guidance_distillation_regresses_the_pipeline_s_guided_output(tiny_generator):
    """The target is what the pipeline's guided sampling step uses: u + w (c - u), per label's scale."""
    teacher = load_pipeline(tiny_generator)
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(3, *teacher.latent_shape, generator=g), torch.tensor([10, 500, 990])
    labels, nulls = torch.tensor([0, 1, 2]), torch.full((3,), 4)
    guidance = torch.tensor([3.5, 2.0, 1.0, 2.0])
    net = RowCounter()
    target = guided_output(net, x, t, labels, nulls, guidance)
    assert net.rows == [6], "conditional and null rows in one call"
    scales, factor = guidance[labels].view(-1, 1, 1, 1), (1 + labels.float()).view(-1, 1, 1, 1)
    shift = t.view(-1, 1, 1, 1) / 1000  # the same in both rows: they share x and t
    torch.testing.assert_close(target, (5 + scales * (factor - 5)) * x + shift)  # null rows: factor 5
    alone = guided_output(net, x, t, labels, nulls, None)
    torch.testing.assert_close(alone, x * factor + shift)
    assert net.rows[-1] == 3, "guidance built in: one row"

    noise_scheduler = DDPMScheduler.from_config(teacher.scheduler.config)
    objective = GuidanceObjective(net, noise_scheduler, guidance)

    class Guided(torch.nn.Module):  # a student that has learned the guided output exactly
        def forward(self, x, t, class_labels):
            self.seen = (x, t)
            return SimpleNamespace(sample=guided_output(net, x, t, class_labels, nulls, guidance))

    z0 = torch.randn(3, *teacher.latent_shape, generator=g)
    student = Guided()
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(z0.shape, generator=generator)
    exact = objective(student, z0, noise, labels, nulls, generator)
    (teacher_x, teacher_t), (student_x, student_t) = net.calls[-2], student.seen
    assert torch.equal(teacher_x[:3], student_x) and torch.equal(teacher_t[:3], student_t)
    draw = torch.Generator().manual_seed(1)  # the step's draws: noise, then the objective's timesteps
    torch.randn(z0.shape, generator=draw)
    t_drawn = torch.randint(0, noise_scheduler.config.num_train_timesteps, (3,), generator=draw)
    assert torch.equal(student_t, t_drawn)
    torch.testing.assert_close(student_x, noise_scheduler.add_noise(z0, noise, t_drawn))
    generator = torch.Generator().manual_seed(1)
    conditional = objective(net, z0, torch.randn(z0.shape, generator=generator), labels, nulls, generator)
    assert exact.item() < 1e-10 < conditional.item(), "the conditional network alone is not the target"


def test_a_guidance_student_samples_with_the_teacher_s_solver_in_one_row_and_can_be_distilled_again(
    tiny_generator, generator_dataset, tmp_path
):
    config = tiny(objective="guidance", balance_conditions=True, sampling_steps=3)  # 3: consistency only
    path = distill(tiny_generator, generator_dataset.root, config, tmp_path / "g", progress=False)
    teacher, student = load_pipeline(tiny_generator), load_pipeline(path)
    assert student.scheduler.config == teacher.scheduler.config, "the teacher's own solver"
    assert student.config.default_steps == teacher.config.default_steps != config.sampling_steps
    assert student.config.guidance_distilled and student.config.guidance_interval == [0.0, 1.0]
    seen = []
    student.unet.register_forward_hook(lambda module, args, output: seen.append(len(args[0])))
    generate_studies(student, [SampleRequest(f"s{i}", "metastasis", None, i) for i in range(3)])
    assert sum(seen) == student.config.default_steps * student.config.eval_chunk, "one row per study, step"
    trained, original = student.unet.state_dict(), teacher.unet.state_dict()
    assert any(not torch.equal(trained[k], original[k]) for k in original)
    assert "Guidance distillation" in (path / "README.md").read_text()
    assert "UniPCMultistepScheduler steps" in (path / "README.md").read_text()
    assert "each condition combination drawn equally often" in (path / "README.md").read_text()
    assert "steps, guidance built in: default" in describe_model(path)["sampler"]
    assert "built in" not in describe_model(tiny_generator)["sampler"]
    with pytest.raises(ValueError, match="is a guidance distillation, not consistency"):
        distill(tiny_generator, generator_dataset.root, tiny(), tmp_path / "g", progress=False)

    with pytest.raises(ValueError, match="already has its guidance distilled"):
        distill(path, generator_dataset.root, config, tmp_path / "again", progress=False)
    lcm = distill(path, generator_dataset.root, tiny(), tmp_path / "lcm", progress=False)
    assert isinstance(load_pipeline(lcm).scheduler, LCMScheduler)


def test_a_guidance_student_keeps_its_teacher_s_interval_unless_told_not_to(
    tiny_generator, generator_dataset, tmp_path
):
    teacher = load_pipeline(tiny_generator)
    teacher.register_to_config(guidance_interval=[0.5, 1.0])
    save_model(teacher, tmp_path / "teacher", card="# teacher guided from half of its steps on\n")
    runs = {
        keep: distill(
            tmp_path / "teacher",
            generator_dataset.root,
            tiny(objective="guidance", keep_guidance_interval=keep),
            tmp_path / f"keep-{keep}",
            progress=False,
        )
        for keep in (True, False)
    }
    kept, every = (load_pipeline(runs[k]).unet.state_dict() for k in (True, False))
    assert any(not torch.equal(kept[k], every[k]) for k in kept), "different targets, same seed"
    assert "its guidance interval [0.5, 1] of the steps" in (runs[True] / "README.md").read_text()
    assert "guidance interval" not in (runs[False] / "README.md").read_text()
    with pytest.raises(ValueError, match="keep_guidance_interval=false"):
        distill(
            tmp_path / "teacher",
            generator_dataset.root,
            tiny(objective="guidance", keep_guidance_interval=True),
            tmp_path / "keep-False",
            progress=False,
        )


def test_balanced_conditions_are_drawn_equally_often_whatever_their_share_of_the_data():
    ids = np.array([[0, 1, 2]] * 90 + [[1, 0, 0]] * 9 + [[1, 3, 0]])  # rows: label, tracer, burden ids
    weights = condition_weights(ids)
    drawn = np.random.default_rng(0).choice(len(ids), 30_000, p=weights)
    shares = np.bincount(np.repeat([0, 1, 2], [90, 9, 1])[drawn]) / len(drawn)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.01)
    assert weights[-1] == pytest.approx(1 / 3), "a condition with one study is as likely as one with 90"


def test_a_consistency_step_from_a_guidance_student_calls_it_once_per_study(tiny_generator):
    teacher = load_pipeline(tiny_generator)
    scheduler = consistency_scheduler(teacher, 10)
    net = RowCounter()
    objective = ConsistencyObjective(net, None, None, scheduler, None, 1e-3)
    x = torch.randn(4, *teacher.latent_shape)
    start, end = torch.tensor([999, 599, 199, 99]), torch.tensor([899, 499, 99, 0])
    labels = torch.tensor([0, 1, 2, 3])
    landed = objective.teacher_step(x, start, end, labels, torch.full_like(labels, 5))
    assert net.rows == [4] and landed.shape == x.shape


def test_interrupted_distillation_resumes_exactly(tiny_generator, generator_dataset, tmp_path, monkeypatch):
    data = generator_dataset.root
    reference = distill(tiny_generator, data, tiny(), tmp_path / "ref", progress=False)
    interrupt_after_the_first_checkpoint(
        monkeypatch, lambda: distill(tiny_generator, data, tiny(), tmp_path / "run", progress=False)
    )
    resumed = distill(tiny_generator, data, tiny(), tmp_path / "run", progress=False)
    a = next((reference / "unet").glob("*.safetensors")).read_bytes()
    b = next((resumed / "unet").glob("*.safetensors")).read_bytes()
    assert a == b, "student weights differ after resuming"
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines if '"distillation"' in line]
    assert steps == [2, 4, 6], "resumed after the step-3 checkpoint, not from the start"


def test_snapshots_keep_the_student_of_each_sample_grid_as_a_loadable_model(
    tiny_generator, generator_dataset, tmp_path
):
    config = tiny(sample_every=3, snapshots=True)
    final = distill(tiny_generator, generator_dataset.root, config, tmp_path / "run", progress=False)
    folders = sorted((tmp_path / "run" / "snapshots").iterdir())
    assert [f.name for f in folders] == ["step-000003"], "step 6 is the final model, not a snapshot"

    pipeline = load_pipeline(folders[0])  # checksums verified on load
    snapshot = pipeline.unet.state_dict()
    teacher, last = (load_pipeline(model).unet.state_dict() for model in (tiny_generator, final))
    assert any(not torch.equal(snapshot[k], teacher[k]) for k in teacher), "the snapshot was trained"
    assert any(not torch.equal(snapshot[k], last[k]) for k in last), "and is not the final student"
    assert pipeline.config.guidance_distilled and pipeline.config.default_steps == config.sampling_steps
    assert "snapshot at step 3 of 6" in (folders[0] / "README.md").read_text()
    with pytest.raises(ConfigError, match="sample_every"):
        tiny(snapshots=True)


def test_distill_command_trains_a_model_and_checks_its_config(tiny_generator, generator_dataset, tmp_path):
    runner = CliRunner()
    args = ["distill", "--model", str(tiny_generator), "--data", str(generator_dataset.root)]
    result = runner.invoke(main, [*args, "--config", "tiny", "--out", str(tmp_path / "d"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "model" / "model_index.json").is_file()
    bad = runner.invoke(
        main, [*args, "--config", "tiny", "--set", "sampling_steps=20", "--out", str(tmp_path / "e")]
    )
    assert bad.exit_code != 0 and "ddim_timesteps" in bad.output


def test_a_dataset_without_the_model_s_conditions_is_refused_before_any_output(tiny_generator, tmp_path):
    """The tiny model knows Perugini grades 1 and 3: grade-2 studies alone give it nothing to learn."""
    dataset = Dataset.create(tmp_path / "data", matrix=GENERATOR_MATRIX)
    with dataset.writer() as writer:
        for source in ("simulated", "real"):
            counts = np.full((2, *GENERATOR_MATRIX), 4)
            writer.add(
                counts,
                study_id=source,
                patient_id=source,
                label="amyloidosis",
                perugini_grade=2,
                source=source,
                tracer="DPD",
            )
    with pytest.raises(DatasetError, match="of the model's conditions"):
        distill(tiny_generator, dataset.root, tiny(), tmp_path / "run", progress=False)
    with pytest.raises(DatasetError, match="of the model's conditions"):
        finetune(tiny_generator, dataset, tmp_path / "tuned", steps=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"], "no run folder was left behind"


def test_a_shipped_student_is_the_current_default_model_s():
    """Retraining the default model without distilling it again fails here: a student's card names its
    teacher, and a student of an earlier default is not shipped beside a new one. A student samples
    in LCM steps (consistency) or with its teacher's own solver (guidance distillation)."""
    default = load_pipeline()
    for name in set(shipped_models()) - {"default"}:
        student = load_pipeline(name)
        assert student.config.guidance_distilled, f"{name} is not a distilled student"
        if not isinstance(student.scheduler, LCMScheduler):
            assert student.scheduler.config == default.scheduler.config, f"{name}: not its teacher's solver"
        teacher_vae = default.vae.state_dict()
        assert all(torch.equal(v, teacher_vae[k]) for k, v in student.vae.state_dict().items()), name
        assert student.config.conditions == default.config.conditions and student.matrix == default.matrix
        assert student.config.factors == default.config.factors, f"{name}: other tracer/burden conditions"
        assert default.sha256 in (student.path / "README.md").read_text(), f"{name}: another teacher"
        assert student.config.rate_calibration == default.config.rate_calibration, f"{name}: its decoder's"


def test_a_shipped_model_is_named_unless_a_folder_of_that_name_exists(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    storage._warn_shadowing.cache_clear()  # warned once per process: start afresh
    assert model_dir("default") == shipped_models()["default"] == model_dir(None)
    assert not caplog.records
    (tmp_path / "default").mkdir()
    with caplog.at_level(logging.WARNING, logger="synthscan.generator.storage"):
        assert model_dir("default") == Path("default")
    assert f"loading the folder {tmp_path / 'default'}, not the shipped model" in caplog.text
    result = CliRunner().invoke(main, ["sample", "--model", "nope", "-n", "1", "--out", "s"])
    names = ", ".join(shipped_models())
    assert result.exit_code == 2 and f"nor a shipped model's name ({names})" in result.output
    caplog.clear()
    monkeypatch.chdir(shipped_models()["default"].parent)  # the shipped folder itself: nothing to warn of
    with caplog.at_level(logging.WARNING, logger="synthscan.generator.storage"):
        assert model_dir("default").resolve() == shipped_models()["default"].resolve()
    assert not caplog.records
