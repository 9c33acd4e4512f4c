"""Each stage's arithmetic floor on this CPU: the multiply-adds the crate's kernels actually issue (3x3 stride-1
convs by Winograd F(4x4, 3x3): 36 per 4x4 output tile and channel pair, edge tiles included; every other conv,
the deconv and the fc layers as plain GEMMs), divided by the GEMM rate measured on the same machine
(`cargo bench --bench ops -- gemm_36x256x256x512`: 36 single-threaded 256x256x512 GEMMs over the threads, as the
Winograd phases run them; 206 GFLOP/s on this 2-core EPYC).
Transforms, RoIAlign, GroupNorm, NMS and paste are left out: the floor is GEMM time only.

    python3 benches/floors.py --gemm-gflops 206 [--depth 101] [--rois 1000] [--dets 100]
"""
import argparse
import math

p = argparse.ArgumentParser()
p.add_argument("--gemm-gflops", type=float, default=206.0)
p.add_argument("--depth", type=int, default=50, choices=[50, 101])
p.add_argument("--height", type=int, default=800)
p.add_argument("--width", type=int, default=1216)
p.add_argument("--rois", type=int, default=1000)
p.add_argument("--dets", type=int, default=100)
a = p.parse_args()


def conv(n, c, k, h, w, kernel, stride):
    """GFLOP of one conv (input n x c x h x w, output k channels), as the crate computes it."""
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
    if kernel == 3 and stride == 1:
        tiles = math.ceil(oh / 4) * math.ceil(ow / 4)
        return 2 * n * tiles * 36 * c * k / 1e9
    return 2 * n * oh * ow * c * k * kernel * kernel / 1e9


h, w = a.height, a.width
stages = {}
g = conv(1, 3, 64, h, w, 7, 2)  # stem
h, w = h // 4, w // 4  # after the stem's stride 2 and the max pool
cin = 64
for planes, blocks, stride in [(64, 3, 1), (128, 4 if a.depth == 50 else 4, 2), (256, 6 if a.depth == 50 else 23, 2), (512, 3, 2)]:
    for b in range(blocks):
        s = stride if b == 0 else 1
        g += conv(1, cin, planes, h, w, 1, 1)
        g += conv(1, planes, planes, h, w, 3, s)
        if b == 0 and (s != 1 or cin != planes * 4):
            g += conv(1, cin, planes * 4, h, w, 1, s)
        h, w = (h - 1) // s + 1, (w - 1) // s + 1
        g += conv(1, planes, planes * 4, h, w, 1, 1)
        cin = planes * 4
stages["backbone"] = g
sizes = [(a.height // s, a.width // s) for s in (4, 8, 16, 32, 64)]
stages["FPN"] = sum(conv(1, c, 256, hh, ww, 1, 1) + conv(1, 256, 256, hh, ww, 3, 1)
                    for c, (hh, ww) in zip([256, 512, 1024, 2048], sizes))
stages["RPN"] = sum(conv(1, 256, 256, hh, ww, 3, 1) + conv(1, 256, 15, hh, ww, 1, 1) for hh, ww in sizes)
stages["box head"] = 4 * conv(a.rois, 256, 256, 7, 7, 3, 1) + 2 * a.rois * (12544 * 1024 + 1024 * (81 + 320)) / 1e9
stages["mask head"] = (4 * conv(a.dets, 256, 256, 14, 14, 3, 1) + 2 * a.dets * 196 * 256 * 1024 / 1e9
                       + conv(a.dets, 256, 80, 28, 28, 1, 1))
print(f"R-{a.depth}, {a.height}x{a.width}, {a.rois} RoIs, {a.dets} detections, GEMM at {a.gemm_gflops:.0f} GFLOP/s")
for name, gf in stages.items():
    print(f"  {name:<10} {gf:7.1f} GFLOP  floor {gf / a.gemm_gflops * 1e3:6.0f} ms")
total = sum(stages.values())
print(f"  {'total':<10} {total:7.1f} GFLOP  floor {total / a.gemm_gflops * 1e3:6.0f} ms")
