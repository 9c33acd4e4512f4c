#!/usr/bin/env bash
# RUSTC_WRAPPER for scripts/fuzz.sh: adds libFuzzer's coverage instrumentation (cargo-fuzz's flags, with debug
# assertions and overflow checks) to the crates named in $FUZZ_INSTRUMENT, and builds every other crate as is.
rustc=$1
shift
name=
prev=
for arg in "$@"; do
    [ "$prev" = "--crate-name" ] && name=$arg
    prev=$arg
done
case " $FUZZ_INSTRUMENT " in
*" $name "*)
    exec "$rustc" "$@" -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
        --cfg fuzzing -Cdebug-assertions -Coverflow-checks ;;
esac
exec "$rustc" "$@"
