"""``python -m mask_rcnn_burn.ray``: see :mod:`mask_rcnn_burn.ray.entry`."""

from .entry import main

raise SystemExit(main(yield_driver=True))
