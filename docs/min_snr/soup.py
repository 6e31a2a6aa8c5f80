"""Average the UNet and condition-encoder weights of two continuations of one base model (a model soup).

    python docs/min_snr/soup.py synthscan/models/default msnr20 soup

Both must share the autoencoder (checked) and sampler settings (the first's are kept).
"""

import sys

import torch

from synthscan.generator.storage import load_pipeline, save_model

a, b, out = sys.argv[1:4]
pa, pb = load_pipeline(a), load_pipeline(b)
for name in ("unet", "condition_encoder"):
    ma, mb = getattr(pa, name), getattr(pb, name)
    sb = mb.state_dict()
    with torch.no_grad():
        ma.load_state_dict(
            {k: (v + sb[k]) / 2 if v.is_floating_point() else v for k, v in ma.state_dict().items()}
        )
va, vb = pa.vae.state_dict(), pb.vae.state_dict()
assert all(torch.equal(va[k], vb[k]) for k in va), "autoencoders differ"
save_model(pa, out, card=f"Weight average (model soup) of the UNet and condition encoder of {a} and {b}.\n")
print("saved", out)
