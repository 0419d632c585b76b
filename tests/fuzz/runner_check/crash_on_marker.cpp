// A libFuzzer target that crashes on one input, for the test
// fuzz_runner_keeps_crash: run_fuzzer.sh must fail when a target crashes and
// leave the crashing input in its artifact directory. Not one of the real
// targets (those are tests/fuzz/fuzz_*.cpp).
#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char marker[] = "CRASH-HERE";
    if (size >= sizeof marker - 1 && std::memcmp(data, marker, sizeof marker - 1) == 0)
        __builtin_trap();
    return 0;
}
