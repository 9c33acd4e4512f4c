"""Times mmdetection's GN Mask R-CNN R-50 end to end on one image (CPU, 2 threads): the reference for
`cargo bench --bench pipeline -- r50/e2e`. Needs the oracle environment of ../shared/oracle/README.md.

    python benches/mmdet_reference.py WEIGHTS.safetensors tests/fixtures/images/coffee_600x400.png

WEIGHTS: e.g. the synthetic R-50 file the tests write to $TMPDIR/mask-rcnn-burn-synth-v1-r50-seed1.safetensors.
"""
import os, sys, time, copy
import torch
torch.set_num_threads(2)
import mmdet
from mmengine.config import Config
from mmdet.utils import register_all_modules
register_all_modules(init_default_scope=True)
from mmdet.registry import MODELS
from mmdet.apis import inference_detector
from safetensors.torch import load_file
path = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', 'gn', 'mask-rcnn_r50_fpn_gn-all_2x_coco.py')
cfg = Config.fromfile(path)
cfg.model.backbone.init_cfg = None
model = MODELS.build(copy.deepcopy(cfg.model))
model.cfg = cfg
model.load_state_dict(load_file(sys.argv[1]), strict=True)
model.eval()
img = sys.argv[2]
for i in range(4):
    t = time.perf_counter()
    with torch.no_grad():
        r = inference_detector(model, img)
    print(f'run {i}: {time.perf_counter() - t:.2f} s, {len(r.pred_instances)} detections', flush=True)
