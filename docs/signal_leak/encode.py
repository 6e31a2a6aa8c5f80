"""python docs/signal_leak/encode.py DATASET N OUT.npz

Scaled latent posterior means of N training studies with the default's autoencoder, and their factors."""

import sys

import numpy as np
import torch
from synthscan.generator.conditions import condition_keys
from synthscan.generator.models import global_scaling_factor
from synthscan.generator.storage import load_pipeline
from synthscan.generator.transform import to_model

from synthscan.dataset import Dataset

data = Dataset.open(sys.argv[1])
n = int(sys.argv[2])
out = sys.argv[3]
pipe = load_pipeline(None)
scaling = global_scaling_factor(pipe.vae.config)
recs = data.records[:n]
lat = []
with torch.no_grad():
    batch = []
    for s in data.iter_studies(recs):
        batch.append(s.counts)
        if len(batch) == 16:
            x, _ = to_model(np.stack(batch).astype(np.float32), pipe.config.bin_factor)
            lat.append(pipe.vae.encode(x).latent_dist.mean.numpy() * scaling)
            batch = []
    if batch:
        x, _ = to_model(np.stack(batch).astype(np.float32), pipe.config.bin_factor)
        lat.append(pipe.vae.encode(x).latent_dist.mean.numpy() * scaling)
lat = np.concatenate(lat)
np.savez(
    out,
    z=lat.astype(np.float32),
    key=np.array(condition_keys(recs)),
    tracer=np.array([r.tracer or "" for r in recs]),
    burden=np.array([str(getattr(r, "burden", "")) for r in recs]),
    patient=np.array([r.patient_id for r in recs]),
)
print(lat.shape, lat.mean(), lat.std())
