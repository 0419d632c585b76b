// Internal unit test of when freed queue memory goes back to the system
// (lib/core/memory_trim.h): only after a burst worth it, once the queues
// fell far below its peak, never more often than the interval. The effect
// on a real process (RSS before, during and after slow readers) is
// checked end to end in test_memory.c.
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>

#include "core/memory_trim.h"
#include "protocol/frame.h"

extern "C" {
#include <cmocka.h>
}

using wsgate::MemoryTrim;

namespace {

constexpr size_t kMiB = size_t{1} << 20;

void test_nothing_happened_means_no_trim(void **) {
    MemoryTrim t;
    for (int64_t now = 0; now < 60000; now += 100) assert_false(t.due(now, 0, 0));
}

void test_a_small_peak_is_not_worth_a_trim(void **) {
    MemoryTrim t;
    assert_false(t.due(0, 0, MemoryTrim::kMinPeakBytes - 1));
    assert_true(t.due(0, 0, MemoryTrim::kMinPeakBytes));
}

void test_trims_once_the_queues_fell_to_a_quarter_of_the_peak(void **) {
    MemoryTrim t;
    const size_t peak = 100 * kMiB;
    assert_false(t.due(0, peak, peak));               // still at the peak
    assert_false(t.due(100, peak / 2, peak));         // half of it: still busy
    assert_false(t.due(200, peak / 4 + 1, peak));     // just above a quarter
    assert_true(t.due(300, peak / 4, peak));          // a quarter
}

void test_at_most_one_trim_per_interval(void **) {
    MemoryTrim t;
    const size_t peak = 64 * kMiB;
    assert_true(t.due(1000, 0, peak));
    // A new burst right after: it waits for the interval.
    assert_false(t.due(1100, 0, peak));
    assert_false(t.due(1000 + MemoryTrim::kIntervalMs - 1, 0, peak));
    assert_true(t.due(1000 + MemoryTrim::kIntervalMs, 0, peak));
}

void test_the_first_trim_can_come_at_any_time(void **) {
    // No trim yet: the interval does not apply (a clock near zero included).
    MemoryTrim t;
    assert_true(t.due(-5, 0, 32 * kMiB));
}

void test_with_the_ledger_the_next_trim_needs_a_new_burst(void **) {
    // As the server uses it: the peak is lowered to what is queued after a trim.
    MemoryTrim t;
    wsgate::QueueLedger q;
    q.peak = 40 * kMiB;
    q.bytes = 1 * kMiB;
    assert_true(t.due(0, q.bytes, q.peak));
    q.peak = q.bytes;
    for (int64_t now = 100; now < 60000; now += 100) assert_false(t.due(now, q.bytes, q.peak));
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_happened_means_no_trim),
        cmocka_unit_test(test_a_small_peak_is_not_worth_a_trim),
        cmocka_unit_test(test_trims_once_the_queues_fell_to_a_quarter_of_the_peak),
        cmocka_unit_test(test_at_most_one_trim_per_interval),
        cmocka_unit_test(test_the_first_trim_can_come_at_any_time),
        cmocka_unit_test(test_with_the_ledger_the_next_trim_needs_a_new_burst),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
