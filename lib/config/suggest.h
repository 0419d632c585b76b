// "Did you mean ...?": the known names closest to a mistyped one, so an
// error can say what to use instead.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace wsgate {

// Optimal string alignment distance: inserting, deleting or replacing one
// character, or swapping two neighbours, each costs 1. Case-insensitive.
size_t edit_distance(std::string_view a, std::string_view b);

// Up to `max` of the dotted `names` that `word` was probably meant to be,
// closest first (ties in the order of `names`); none when nothing is close.
// Whole names are compared first ("log.levl" -> log.level); when no whole
// name is close, last segments are ("ping_interval" ->
// heartbeat.ping_interval_ms, "level" -> log.level and compression.level).
// A section name alone ("tls") gets the section's first options.
std::vector<std::string_view> closest_names(std::string_view word,
                                            const std::vector<std::string_view> &names,
                                            size_t max);

}  // namespace wsgate
