"""Would an inference engine sample faster on CPU? The UNet and decoder calls, torch eager vs ONNX
Runtime and OpenVINO (both installable from PyPI).

    pip install -e ".[bench]"   # onnx, onnxruntime, openvino
    python benchmarks/onnx_speed.py [--model DIR] [--engines onnxruntime openvino] [--repeats 20]
        [--threads N] [--json OUT.json]

Exports the model's UNet (one guided call: conditional and null rows of one ``eval_chunk``) and its
decoder (one chunk of latents) with ``torch.onnx.export``, runs every engine (fp32) on the same inputs
in the same process with the same number of threads, and prints the largest output difference and
the per-call times, alternating the engines so that load on a shared machine affects all alike. The
UNet and decoder are 83 % of ``synthscan sample``'s time on CPU (``benchmarks/sample_speed.py``): the
projected end-to-end ratio applies the measured per-call ratios to the split given by ``--split``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from synthscan.generator.models import latents_from_unet, unfold_latents
from synthscan.generator.storage import load_pipeline


class GuidedUNet(torch.nn.Module):
    """The UNet call of one guided solver step: noisy latents, timesteps, class input → noise."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, class_labels=labels).sample


class Decoder(torch.nn.Module):
    """The decoder call of one chunk: the UNet's scaled latents → binned rate maps."""

    def __init__(self, vae: torch.nn.Module, latent_patch: int):
        super().__init__()
        self.vae, self.latent_patch = vae, latent_patch

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(
            latents_from_unet(unfold_latents(z, self.latent_patch), self.vae.config)
        ).sample


def seconds_per_call(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def onnxruntime_runner(path: Path, threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(None, feed)[0]


def openvino_runner(path: Path, threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}  # no silent bf16
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    return lambda feed: compiled(feed)[0]


ENGINES = {"onnxruntime": onnxruntime_runner, "openvino": openvino_runner}


def compare(name: str, module: torch.nn.Module, inputs: dict[str, torch.Tensor], folder: Path, args) -> dict:
    """Export ``module``, check that every engine agrees with torch, and time them all (alternating)."""
    path = folder / f"{name}.onnx"
    with torch.no_grad():
        reference = module(*inputs.values()).numpy()
        torch.onnx.export(
            module,
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            dynamo=False,
            opset_version=17,
        )
    feed = {key: value.numpy() for key, value in inputs.items()}
    runners = {engine: ENGINES[engine](path, args.threads) for engine in args.engines}
    calls = {"torch": lambda: module(*inputs.values())}
    calls.update({engine: (lambda run=run: run(feed)) for engine, run in runners.items()})
    seconds: dict[str, list[float]] = {engine: [] for engine in calls}
    with torch.no_grad():
        for _ in range(3):  # alternate, so a burst of load on a shared machine hits every engine
            for engine, call in calls.items():
                seconds[engine].append(seconds_per_call(call, args.repeats))
    result = {
        "rows": int(next(iter(inputs.values())).shape[0]),
        "output_mean_abs": float(np.abs(reference).mean()),
    }
    result["ms"] = {engine: 1000 * min(values) for engine, values in seconds.items()}
    result["ratio"] = {engine: result["ms"]["torch"] / result["ms"][engine] for engine in runners}
    result["max_abs_difference"] = {
        engine: float(np.abs(run(feed) - reference).max()) for engine, run in runners.items()
    }
    print(f"{name}: {result['rows']} rows per call, torch {result['ms']['torch']:.1f} ms", end="")
    for engine in runners:
        print(
            f"; {engine} {result['ms'][engine]:.1f} ms = {result['ratio'][engine]:.2f}x "
            f"(largest difference {result['max_abs_difference'][engine]:.1e})",
            end="",
        )
    print(f"; outputs average {result['output_mean_abs']:.2e} in magnitude")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per engine and round")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="threads of both engines"
    )
    parser.add_argument(
        "--split",
        type=float,
        nargs=2,
        default=(0.67, 0.16),
        metavar=("UNET", "DECODER"),
        help="shares of sampling time in the UNet and the decoder (benchmarks/sample_speed.py)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipeline = load_pipeline(args.model, device="cpu")
    chunk = pipeline.config.eval_chunk
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((chunk, *pipeline.latent_shape), generator=generator)
    labels = torch.zeros(chunk, dtype=torch.long)
    nulls = torch.full_like(labels, len(pipeline.config.conditions))
    if pipeline.condition_encoder is not None:
        labels = pipeline.condition_encoder.null_ids(chunk, torch.device("cpu"))
        nulls = labels
    with torch.no_grad():
        class_input = pipeline._class_input(torch.cat([labels, nulls]))
    unet_inputs = {
        "x": torch.cat([latents, latents]),
        "t": torch.full((2 * chunk,), 500, dtype=torch.long),
        "labels": class_input,
    }
    print(f"model: {pipeline.path}; {args.threads} threads; torch {torch.__version__}")
    decoder = Decoder(pipeline.vae, pipeline.config.get("latent_patch", 1)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        report = {
            "threads": args.threads,
            "UNet": compare("UNet", GuidedUNet(pipeline.unet).eval(), unet_inputs, Path(tmp), args),
            "decoder": compare("decoder", decoder, {"z": latents}, Path(tmp), args),
        }
    unet_share, decoder_share = args.split
    remaining = 1 - unet_share - decoder_share
    report["projected_sampling_ratio"] = {}
    for engine in args.engines:
        unet, decoder = report["UNet"]["ratio"][engine], report["decoder"]["ratio"][engine]
        projected = 1 / (remaining + unet_share / unet + decoder_share / decoder)
        report["projected_sampling_ratio"][engine] = projected
        print(
            f"projected `synthscan sample` speed-up with the UNet and decoder on {engine} "
            f"(UNet {100 * unet_share:.0f} %, decoder {100 * decoder_share:.0f} % of the time): "
            f"{projected:.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
