#!/usr/bin/env bash
# Packs the GPU report (examples/gpu_report.rs) for a bare GPU machine — NVIDIA driver and Vulkan ICD present, no
# Rust toolchain, no network, a few tens of MB carried — and prints the one command that runs it there.
#
#     scripts/gpu-report.sh            # builds, strips, compresses into .gpu/ (git-ignored), prints the command
#
# .gpu/ then holds gpu_report.xz (~14 MB) and the Vulkan loader packages (libvulkan1 and what a headless
# machine lacks beside it); the printed command unpacks them, points the loader at the NVIDIA ICD when the
# machine has no other, runs the report and leaves report.md and report.json in $OUT (the device tool's output
# folder; any folder elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mask-rcnn-burn/target}"

cargo build --release --example gpu_report
mkdir -p .gpu
rm -f .gpu/*.deb .gpu/gpu_report.xz
strip -o .gpu/gpu_report "$CARGO_TARGET_DIR/release/examples/gpu_report"
xz -T0 -9 -f .gpu/gpu_report

# The loader and its GL-side companions, for the machine's architecture (amd64), without touching this
# machine's package state.
lists=$(mktemp -d)
opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists="$lists")
mkdir -p "$lists/partial"
apt-get "${opts[@]}" update -qq
(cd .gpu && apt-get "${opts[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
rm -rf "$lists"

size=$(du -cb .gpu/* | tail -1 | cut -f1)
echo "packed .gpu/: $((size / 1024 / 1024)) MB ($(ls .gpu | tr '\n' ' '))"
cat <<'CMD'
command for the GPU machine (carry .gpu; $OUT is the folder whose files come back):

for f in .gpu/*.deb; do dpkg -x $f /; done; ldconfig; [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; export XDG_RUNTIME_DIR=/tmp; xz -dc .gpu/gpu_report.xz > /tmp/gpu_report && chmod +x /tmp/gpu_report && /tmp/gpu_report --json $OUT/report.json | tee $OUT/report.md
CMD
