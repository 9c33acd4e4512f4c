#!/usr/bin/env bash
# Runs one fuzz target (fuzz/fuzz_targets) for SECONDS with libFuzzer, reusing the crate's release build.
#
#   scripts/fuzz.sh image_decode 600        # or: safetensors, pth, config_toml
#
# `cargo fuzz run` instruments every crate, Burn included (a ~40-minute build on 2 cores); this script copies
# the release build once and instruments only the crates that parse input (this crate, image, png, fdeflate,
# pytorch-reader, zip, safetensors), through a rustc wrapper. Without a sanitizer (safe Rust; libjpeg-turbo's C
# is not instrumented), so crashes are panics, aborts, timeouts and libFuzzer's RSS limit (2 GB).
# Corpus: fuzz/corpus/TARGET (seeded from fuzz/seeds and the test fixtures), crashes in fuzz/artifacts/TARGET.
set -euo pipefail
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS] [libFuzzer options...]}
seconds=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
root=$(cd "$(dirname "$0")/.." && pwd)
main_target=${CARGO_TARGET_DIR:-$root/target}
build=$main_target/fuzz-build
export FUZZ_INSTRUMENT="mask_rcnn_burn mask_rcnn_burn_fuzz image_decode safetensors pth config_toml image png fdeflate pytorch_reader zip"
if [ ! -e "$build/.seeded" ]; then
    mkdir -p "$build"
    # The crate's compiled dependencies (Burn), so only what changes is rebuilt.
    [ -d "$main_target/release" ] && cp -r "$main_target/release" "$build/"
    cp "$root/Cargo.lock" "$root/fuzz/Cargo.lock" 2>/dev/null || true
    # Cargo does not see the wrapper's flags: clean the crates it instruments so they are rebuilt with them.
    for p in mask-rcnn-burn image png fdeflate pytorch-reader zip safetensors; do
        CARGO_TARGET_DIR=$build cargo clean --release --manifest-path "$root/fuzz/Cargo.toml" -p "$p" >/dev/null 2>&1 || true
    done
    touch "$build/.seeded"
fi
CARGO_TARGET_DIR=$build RUSTC_WRAPPER="$root/scripts/fuzz-rustc.sh" \
    cargo build --release --manifest-path "$root/fuzz/Cargo.toml" --bin "$target"
corpus=$root/fuzz/corpus/$target
mkdir -p "$corpus" "$root/fuzz/artifacts/$target"
if [ -z "$(ls -A "$corpus")" ]; then
    # Seeds: fuzz/seeds (scripts/fuzz-seeds.py), the JPEG corpus and its cv2 PNGs, the built-in configs.
    [ -d "$root/fuzz/seeds/$target" ] && cp "$root/fuzz/seeds/$target"/* "$corpus/"
    case $target in
    image_decode) cp "$root"/tests/fixtures/jpeg/*.jpg "$root"/tests/fixtures/jpeg/*.png "$corpus/" ;;
    config_toml) cp "$root"/configs/*.toml "$corpus/" ;;
    esac
fi
exec "$build/release/$target" "$corpus" -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -timeout=30 \
    -artifact_prefix="$root/fuzz/artifacts/$target/" -print_final_stats=1 "$@"
