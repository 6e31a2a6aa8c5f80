"""Average the UNet and condition-encoder weights of continuations of one base model (a model soup).

    python docs/min_snr/soup.py synthscan/models/default msnr20 soup

`synthscan train` does this itself with `continuation.soup_snr_gammas`; this script averages models
made by separate `synthscan finetune` runs of one base model.
"""

import sys

from synthscan.generator.soup import average_models

if len(sys.argv) < 4:
    sys.exit(__doc__)
*models, out = sys.argv[1:]
print("saved", average_models(models, out))
